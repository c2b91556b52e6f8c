"""Alert latency: broker append time of a `threshold_crossed` alert minus that of the transaction
that crossed the threshold, with the generator sending at a fixed rate and the worker caught up.

Both topics of the phase log append time (`message.timestamp.type=LogAppendTime`), so both
stamps come from the broker's one clock. The crossing transaction is the newest piece of
evidence of the alert's window (one pair lives on one partition, so the highest offset).

Under exactly-once an alert is appended when its batch sends it and becomes readable when the
batch's transaction commits, so the phase also reads ``fraud`` live, ``read_committed``, as a
compliance consumer would, and takes the time each alert reached it (:class:`Visibility`; the
broker runs on this machine, so both clocks are the machine's): the visible latency, under
both guarantees.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.measure import end_offsets

LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


@dataclass(frozen=True)
class Latencies:
    alerts: int  # threshold_crossed alerts read (duplicates of one alert_id counted once)
    samples: list[int]  # milliseconds, one per alert whose crossing transaction was found
    unmatched: int  # evidence truncated, or the transaction not found
    visible: list[int] = field(default_factory=list)  # ms until a read_committed reader had it

    def percentile(self, q: float, samples: list[int] | None = None) -> float | None:
        """Nearest-rank percentile (q in 0..100) of ``samples`` (the append-time ones by
        default), None without samples."""
        ordered = sorted(self.samples if samples is None else samples)
        if not ordered:
            return None
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return float(ordered[rank - 1])


class Visibility:
    """Reads a fraud topic live, read_committed, and keeps the wall-clock time (ms) at which
    each threshold_crossed alert first reached it. It runs in a thread with an event loop of its
    own: the bench's loop blocks on its polls, which would delay the reads."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.seen: dict[str, int] = {}
        self.bootstrap = bootstrap
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._read()), daemon=True)

    async def __aenter__(self) -> Visibility:
        self._thread.start()
        await asyncio.to_thread(self._started.wait, 30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, 30)

    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False,
            isolation_level="read_committed", fetch_max_wait_ms=50,
        )  # fmt: skip
        await consumer.start()
        try:
            consumer.assign(self.partitions)
            await consumer.seek_to_beginning(*self.partitions)
            self._started.set()
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                now = round(time.time() * 1000)
                for messages in batches.values():
                    for message in messages:
                        alert = json.loads(message.value or b"{}")
                        if alert.get("kind") == "threshold_crossed":
                            self.seen.setdefault(alert["alert_id"], now)
        finally:
            self._started.set()
            await consumer.stop()


async def _read_all(bootstrap: str, topic: str) -> Iterable[tuple[int, int, int, bytes]]:
    """(partition, offset, timestamp, value) of every record of `topic` now, read_committed
    (under exactly-once, the alerts a consumer sees)."""
    ends = await end_offsets(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    out: list[tuple[int, int, int, bytes]] = []
    try:
        wanted = {TopicPartition(topic, p): end for p, end in ends.items() if end > 0}
        if not wanted:
            return out
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        while wanted:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for messages in batches.values():
                out.extend((m.partition, m.offset, m.timestamp, m.value or b"") for m in messages)
            for tp, end in list(wanted.items()):  # a transaction's marker may be the last offset
                if await consumer.position(tp) >= end:
                    wanted.pop(tp)
        return out
    finally:
        await consumer.stop()


async def measure(
    bootstrap: str, transactions_topic: str, fraud_topic: str, seen: dict[str, int] | None = None
) -> Latencies:
    """The append-time latencies of the threshold_crossed alerts in ``fraud_topic``, and their
    visible ones from ``seen`` (alert_id: ms, of :class:`Visibility`)."""
    crossings: dict[str, tuple[int, int, int]] = {}  # alert_id -> (append ms, partition, offset)
    unmatched = 0
    for _, _, stamp, value in await _read_all(bootstrap, fraud_topic):
        alert = json.loads(value)
        if alert.get("kind") != "threshold_crossed" or alert["alert_id"] in crossings:
            continue
        evidence = alert.get("transactions") or []
        if alert.get("truncated") or not evidence:
            unmatched += 1
            crossings[alert["alert_id"]] = (stamp, -1, -1)
            continue
        newest = max(evidence, key=lambda e: e["offset"])
        crossings[alert["alert_id"]] = (stamp, newest["partition"], newest["offset"])
    needed = {(p, o) for _, p, o in crossings.values() if p >= 0}
    appended = {
        (p, o): stamp
        for p, o, stamp, _ in await _read_all(bootstrap, transactions_topic)
        if (p, o) in needed
    }
    samples, visible = [], []
    for alert_id, (stamp, p, o) in crossings.items():
        if p < 0:
            continue
        if (p, o) in appended:
            samples.append(stamp - appended[p, o])
            if seen and alert_id in seen:
                visible.append(seen[alert_id] - appended[p, o])
        else:
            unmatched += 1
    return Latencies(len(crossings), samples, unmatched, visible)
