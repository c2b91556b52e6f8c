"""Event-time watermarks of one partition (DESIGN §2). Pure: no Faust, no I/O.

Input keyed by pair is processed on the partition it arrived on, and that partition's own
watermark closes its windows: max event time seen minus the allowed out-of-orderness.

Unkeyed input is re-keyed by pair through an internal topic. Its events then meet on a partition
events from every input partition, so, as in Flink after a ``keyBy``, the watermark there is the
minimum of the watermarks of all input partitions; each input partition broadcasts its own to
every partition of the internal topic whenever it passes a multiple of SLIDE (the only values a
window can tell apart).

A state partition holds pairs of both routes, and each route closes its own pairs at its own
watermark: a keyed pair at its input partition's, a re-keyed pair at the minimum. One mark for
both would let the keyed input, which often runs ahead, close a re-keyed pair's windows while its
transactions are still in flight through the internal topic.

A partition that receives nothing for IDLE_TIMEOUT seconds of wall clock, while none of its
records wait to be read, is *idle*, and event time does not stall on it:
- its own watermark (keyed input) goes on at wall-clock speed from its last event: after being
  idle for ``d`` seconds it is the last event's watermark plus ``d - IDLE_TIMEOUT``. A live
  stream's quiet partition thus closes its windows about IDLE_TIMEOUT after they end, and a
  replay of old data that pauses moves on only by the length of the pause;
- it leaves the minimum that re-keyed state takes (Flink's ``withIdleness``): it announces itself
  idle, and the minimum is over the partitions that are not. A partition that never had a record
  is idle IDLE_TIMEOUT after its assignment. Its next record makes it rejoin the minimum; records
  behind the watermark reached meanwhile are late. When every input partition is idle, the
  highest of their watermarks holds (as in Flink, whose idle inputs all let the highest through).
Both are approximations: an event that arrives after a long pause with an older timestamp may
find its windows closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.windowing import KEYED, NO_WATERMARK, REKEYED, Source, WindowSpec


@dataclass
class PartitionClock:
    """Watermark state of partition ``partition`` (of the input and of the state alike).

    ``source``: this input partition's own watermark (floored to SLIDE), the keyed route's;
    ``keyed``: events keyed by pair were processed here (for the metrics);
    ``forwarded``: watermark each input partition announced to this partition;
    ``idle_sources``: input partitions that announced themselves idle: out of the minimum;
    ``rekeyed``: re-keyed events were processed here (for the metrics);
    ``applied``: per source (route and input partition), the highest offset applied to this
    partition's state, so a replayed forward is recognised after its pair was closed and dropped;
    ``closed``: per route, the watermark up to which its pairs' windows have been closed;
    ``late``: per source, offsets of late transactions whose dead letter the broker has not
    acknowledged yet (a replay skips what ``applied`` covers, so these are sent again);
    ``source_idle``: this input partition announced itself idle (and rejoins with its next record).
    """

    partition: int
    source: int = NO_WATERMARK
    keyed: bool = False
    forwarded: dict[int, int] = field(default_factory=dict)
    idle_sources: set[int] = field(default_factory=set)
    rekeyed: bool = False
    applied: dict[str, int] = field(default_factory=dict)
    closed: dict[str, int] = field(default_factory=dict)
    late: dict[str, set[int]] = field(default_factory=dict)
    source_idle: bool = False
    event_source: int = field(default=NO_WATERMARK, compare=False)  # unfloored, from events only

    def observe(self, spec: WindowSpec, event_ms: int, out_of_orderness_ms: int) -> bool:
        """Advance the source watermark for an event seen on this input partition.

        Returns True when it passed a multiple of SLIDE (announce it; persist it)."""
        self.event_source = max(self.event_source, event_ms - out_of_orderness_ms)
        return self._advance_source(spec, event_ms - out_of_orderness_ms)

    def idle(self, spec: WindowSpec, beyond_timeout_ms: int) -> bool:
        """No input for IDLE_TIMEOUT plus ``beyond_timeout_ms``: event time goes on at wall-clock
        speed from the last event's watermark. True if the watermark moved."""
        # from the last event, not from an earlier idle step: repeated ticks must not compound
        last = self.event_source if self.event_source > NO_WATERMARK else self.source
        return last > NO_WATERMARK and self._advance_source(spec, last + beyond_timeout_ms)

    def announce(self, source_partition: int, watermark: int, idle: bool = False) -> bool:
        """Input partition ``source_partition`` announced its watermark, and whether it is idle.
        True if this partition's view of it changed (the watermark moved forward, or it left or
        rejoined the minimum)."""
        previous = self.forwarded.get(source_partition, NO_WATERMARK)
        changed = watermark > previous
        self.forwarded[source_partition] = max(watermark, previous)
        if idle != (source_partition in self.idle_sources):
            changed = True
            if idle:
                self.idle_sources.add(source_partition)
            else:
                self.idle_sources.discard(source_partition)
        return changed

    def watermark(self, route: str, partitions: int) -> int:
        """Watermark of the route's pairs: the keyed route's is this input partition's own; the
        re-keyed route's the minimum over the input partitions (``partitions`` of them, and any
        other that announced itself) that are not idle; if all are, the highest."""
        if route == KEYED:
            return self.source
        sources = set(range(partitions)) | self.forwarded.keys()
        active = [
            self.forwarded.get(p, NO_WATERMARK) for p in sources if p not in self.idle_sources
        ]
        return min(active) if active else max(self.forwarded.values(), default=NO_WATERMARK)

    def closed_at(self, route: str) -> int:
        return self.closed.get(route, NO_WATERMARK)

    def is_duplicate(self, source: Source) -> bool:
        return source.offset <= self.applied.get(source.id, -1)

    def mark_applied(self, source: Source) -> None:
        if source.offset > self.applied.get(source.id, -1):
            self.applied[source.id] = source.offset

    def hold_late(self, source: Source) -> None:
        self.late.setdefault(source.id, set()).add(source.offset)

    def release_late(self, source: Source) -> None:
        offsets = self.late.get(source.id, set())
        offsets.discard(source.offset)
        if not offsets:
            self.late.pop(source.id, None)

    def is_held_late(self, source: Source) -> bool:
        return source.offset in self.late.get(source.id, ())

    def _advance_source(self, spec: WindowSpec, watermark: int) -> bool:
        floored = spec.floor(watermark)
        if floored <= self.source:
            return False
        self.source = floored
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "p": self.partition,
            "source": self.source,
            "keyed": self.keyed,
            "forwarded": {str(p): w for p, w in self.forwarded.items()},
            "idle": sorted(self.idle_sources),
            "source_idle": self.source_idle,
            "rekeyed": self.rekeyed,
            "applied": self.applied,
            # one mark, the lowest, for a worker of a version before the routes had their own
            "closed": min(self.closed.values(), default=NO_WATERMARK),
            "closed_routes": self.closed,
            "late": {source: sorted(offsets) for source, offsets in self.late.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartitionClock:
        return cls(
            partition=data["p"],
            source=data["source"],
            keyed=data["keyed"],
            forwarded={int(p): w for p, w in data["forwarded"].items()},
            idle_sources=set(data.get("idle", ())),
            source_idle=data.get("source_idle", False),
            rekeyed=data["rekeyed"],
            applied=dict(data["applied"]),
            closed=closed_marks(data),
            late={source: set(offsets) for source, offsets in data.get("late", {}).items()},
        )


def closed_marks(data: dict[str, Any]) -> dict[str, int]:
    """The routes' closed marks of a stored clock. A clock stored before they were per route has
    one mark for the partition: the re-keyed route's pairs were closed at it too if it had any."""
    if "closed_routes" in data:
        return dict(data["closed_routes"])
    closed = data["closed"]
    return {KEYED: closed, REKEYED: closed} if data["rekeyed"] else {KEYED: closed}
