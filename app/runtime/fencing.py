"""Changelog records written by a worker that had already lost the partition are not restored.

A worker stopped past the session timeout (SIGSTOP, a frozen VM) is removed from the group and
its partitions go to another worker, which processes them again from the committed offset. When
the stopped one resumes, its producer still delivers the changelog records it held, after the new
owner's: a restore that applies the changelog in order would end with those older values, and the
new owner's work on those keys would be lost (seen: a window_closed alert with 9 of its 16
transactions). Kafka fences such a zombie only for transactional producers: under
PROCESSING_GUARANTEE=exactly_once the worker's transactions do (app.runtime.transactions) and
its table is a plain Faust one; this fence is the at-least-once guard.

So every changelog record carries its writer's consumer-group generation (a header) and its write
time (the record timestamp, taken when the detector decides to write, before its last check for a
stop: app.detector.Detector._end; not when the batch leaves). Replaying a
partition, :class:`ChangelogFence` drops a record whose generation is older than one already
replayed (or written by this worker) and that was written before the first record of that newer
generation: its writer had been replaced. A lower generation written later is a new life of the
group (deleted, or expired after the offsets retention: generations start again at 1) and is
kept. The fence fails open: a record without the header, or with a broker-set timestamp, is kept.
It assumes the workers' clocks agree to within the session timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP, EventT

log = logging.getLogger(__name__)

GENERATION_HEADER = "generation"
LOG_APPEND_TIME = 1  # a record timestamp set by the broker, not by its writer


@dataclass
class Owner:
    generation: int  # the newest generation replayed so far in a partition
    since_ms: int  # the write time of its first record replayed


class ChangelogFence:
    """Per changelog partition, the newest writer replayed so far (pure: no Faust, no I/O)."""

    def __init__(self) -> None:
        self.owners: dict[Hashable, Owner] = {}
        self.dropped = 0

    def admit(self, partition: Hashable, generation: int | None, written_ms: int | None) -> bool:
        """True if the record is to be restored; False for a replaced writer's."""
        if generation is None or written_ms is None:
            return True
        owner = self.owners.get(partition)
        if owner is None or generation > owner.generation:
            self.owners[partition] = Owner(generation, written_ms)
            return True
        if generation == owner.generation:
            return True
        if written_ms < owner.since_ms:  # older generation, written before the newer one began
            self.dropped += 1
            return False
        self.owners[partition] = Owner(generation, written_ms)  # the group started again
        return True


def record_generation(headers: Any) -> int | None:
    """The writer's generation from a changelog record's headers (None: not ours, or bad)."""
    items = headers.items() if isinstance(headers, dict) else headers or ()
    for key, value in items:
        if key == GENERATION_HEADER:
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


class FencedTable(faust.Table[Any, Any]):
    """A Faust table whose restore drops the changelog records of a replaced writer (see the
    module's docstring); app.runtime.state writes its records, naming their writer, and admits
    them to the fence as replayed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fence = ChangelogFence()

    def apply_changelog_batch(self, batch: Iterable[EventT[Any]]) -> None:
        events = list(batch)
        dropped: list[EventT[Any]] = []
        super().apply_changelog_batch(self._admitted(events, dropped))
        if dropped:
            # the store advanced its offsets only past what it applied: past the dropped too
            last: dict[TP, int] = {}
            for event in events:
                tp = event.message.tp
                last[tp] = max(event.message.offset, last.get(tp, -1))
            for tp, offset in last.items():
                self.data.set_persisted_offset(tp, offset)
            where: dict[int, list[int]] = {}
            for event in dropped:
                where.setdefault(event.message.tp.partition, []).append(event.message.offset)
            log.warning(
                "%s: %d changelog records not restored: written by a worker that had been "
                "replaced (stopped past the session timeout); %s",
                self.name,
                len(dropped),
                ", ".join(
                    f"partition {p} offsets {min(o)}-{max(o)}" for p, o in sorted(where.items())
                ),
            )

    def _admitted(
        self, events: list[EventT[Any]], dropped: list[EventT[Any]]
    ) -> Iterator[EventT[Any]]:
        for event in events:
            message = event.message
            written_ms = (
                None
                if message.timestamp is None or message.timestamp_type == LOG_APPEND_TIME
                else round(message.timestamp * 1000)
            )
            if self.fence.admit(message.tp, record_generation(message.headers), written_ms):
                yield event
            else:
                dropped.append(event)
