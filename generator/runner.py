"""The generator's send loop: pull records from `generator.stream`, pace them, hand them to a sink.

Runs on the event loop so pacing, progress display and Ctrl-C handling share one thread; stops
when the records run out, the wall-clock deadline passes, or `stop` is set, and then flushes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from generator.pacing import TokenBucket
from generator.sink import Sink, SinkClosed
from generator.stream import Record

# Records handed over between two looks at the event loop when sending as fast as possible.
CHUNK = 2048


@dataclass
class RunStats:
    """What a run has produced so far; read by the progress display and the summary."""

    produced: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    structuring: set[int] = field(default_factory=set)
    near_misses: set[int] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def note(self, record: Record) -> None:
        self.produced += 1
        self.kinds[record.kind] += 1
        if record.scenario is not None:
            target = self.structuring if record.scenario.type == "structuring" else self.near_misses
            target.add(record.scenario.index)

    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return max(1e-9, end - self.started)


async def run(
    records: Iterator[Record],
    sink: Sink,
    *,
    rate: float,
    stop: asyncio.Event,
    stats: RunStats,
    deadline: float | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> None:
    """Send until the records end, `deadline` (time.monotonic) passes or `stop` is set; flush.

    `rate` is records per second; 0 sends as fast as the sink accepts.
    """
    bucket = TokenBucket(rate) if rate > 0 else None
    try:
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            allowed = CHUNK if bucket is None else bucket.take(CHUNK)
            if allowed == 0 and bucket is not None:
                await asyncio.sleep(bucket.wait_seconds())
                continue
            exhausted = await _send_some(records, sink, allowed, stats, on_record)
            if exhausted:
                break
            if bucket is None:
                await asyncio.sleep(0)  # let signal handlers and the progress display run
        await sink.flush()
    except SinkClosed:
        stop.set()
    finally:
        stats.finished = time.monotonic()


async def _send_some(
    records: Iterator[Record],
    sink: Sink,
    allowed: int,
    stats: RunStats,
    on_record: Callable[[Record], None] | None,
) -> bool:
    """Send up to `allowed` records; True when the stream has no more."""
    for _ in range(allowed):
        record = next(records, None)
        if record is None:
            return True
        await sink.send(record)
        stats.note(record)
        if on_record is not None:
            on_record(record)
    return False
