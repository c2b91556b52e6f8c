"""Sliding event-time windows of one pair, built on panes (DESIGN §2). Pure: no Faust, no I/O.

A *pane* is one SLIDE-long slice of event time; a window ``[start, start+SIZE)`` is the sum of its
SIZE/SLIDE panes, so a transaction updates exactly one pane (one state write). A pair's panes, the
windows already alerted as crossed, and how far its windows are closed live in one
:class:`PairWindows`, stored as one table value per pair.

    SIZE = 3 slides               t
    panes:     |p0 |p1 |p2 |p3 |p4 |
    windows:   [p0 p1 p2)            <- the windows holding t are the SIZE/SLIDE ones
                   [p1 p2 p3)           whose start lies in (t - SIZE, t]
                       [p2 p3 p4)
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

from app.parsing import Transaction

NO_WATERMARK = -(2**62)  # below any event time: nothing is closed yet

# One piece of evidence: event time ms, amount cents, source partition, source offset.
Evidence: TypeAlias = tuple[int, int, int, int]


KEYED = "k"  # the route of input keyed by pair: processed on the partition it arrived on
REKEYED = "r"  # the route of the rest: re-keyed by pair through the internal topic
ROUTES = (KEYED, REKEYED)


class Source(NamedTuple):
    """Where a transaction came from: its input partition and offset, and the path it took
    (``route`` "k" keyed, processed where it arrived; "r" re-keyed through the internal topic).
    Offsets only grow along one route from one partition, which makes replays recognisable."""

    route: str
    partition: int
    offset: int

    @property
    def id(self) -> str:
        return f"{self.route}{self.partition}"


@dataclass(frozen=True)
class WindowSpec:
    """Window geometry and the alert rule; all times in epoch milliseconds."""

    size_ms: int
    slide_ms: int
    threshold_cents: int
    max_evidence: int

    def __post_init__(self) -> None:
        if self.size_ms <= 0 or self.slide_ms <= 0 or self.size_ms % self.slide_ms:
            raise ValueError("window size must be a positive multiple of the slide")

    def pane_of(self, time_ms: int) -> int:
        """Start of the pane (and of the newest window) holding ``time_ms``."""
        return time_ms - time_ms % self.slide_ms

    def floor(self, watermark: int) -> int:
        """The watermark as the windows see it: window ends are multiples of SLIDE, so a
        watermark only matters through the last multiple of SLIDE it has reached."""
        return NO_WATERMARK if watermark <= NO_WATERMARK else self.pane_of(watermark)

    def window_starts(self, time_ms: int) -> range:
        """Starts of the SIZE/SLIDE windows holding ``time_ms``, oldest first."""
        newest = self.pane_of(time_ms)
        return range(newest - self.size_ms + self.slide_ms, newest + 1, self.slide_ms)


class Pane(NamedTuple):
    total: int  # cents
    transfers: int
    first_ms: int
    last_ms: int
    evidence: list[Evidence]  # at most max_evidence, in arrival order


class WindowResult(NamedTuple):
    """A window's content, as an alert reports it."""

    start_ms: int
    total: int
    transfers: int
    first_ms: int
    last_ms: int
    evidence: list[Evidence]
    truncated: bool


@dataclass
class PairWindows:
    """The open panes of one (sender, receiver) pair and what has been alerted or closed.

    ``closed_ms``: every window ending at or before it has been closed (alerted if flagged);
    ``crossed``: window starts whose ``threshold_crossed`` alert has been sent;
    ``seen``: per source partition, the highest source offset applied (replays are skipped).
    """

    partition: int
    closed_ms: int
    panes: dict[int, Pane] = field(default_factory=dict)
    crossed: set[int] = field(default_factory=set)
    seen: dict[str, int] = field(default_factory=dict)

    def is_duplicate(self, source: Source) -> bool:
        return source.offset <= self.seen.get(source.id, -1)

    @property
    def route(self) -> str:
        """The route whose watermark closes this pair's windows: re-keyed once any of its
        transactions came that way (its minimum is the lower), keyed otherwise."""
        for id_ in self.seen:  # a few ids: a loop is cheaper than a generator
            if id_[0] == REKEYED:
                return REKEYED
        return KEYED

    def add(
        self, spec: WindowSpec, tx: Transaction, source: Source, watermark: int
    ) -> list[WindowResult] | None:
        """Add ``tx`` to its windows that are still open at ``watermark``.

        Returns the windows whose total crossed the threshold because of it (each reported
        once), or None if every window of ``tx`` is closed: the transaction is late. A window
        the pair closed already stays closed, whatever ``watermark`` says.
        """
        watermark = max(spec.floor(watermark), self.closed_ms)
        starts = [s for s in spec.window_starts(tx.time_ms) if s + spec.size_ms > watermark]
        if not starts:
            return None
        self.closed_ms = watermark
        self.seen[source.id] = max(source.offset, self.seen.get(source.id, -1))
        start = spec.pane_of(tx.time_ms)
        pane = self.panes.get(start)
        evidence = (tx.time_ms, tx.cents, source.partition, source.offset)
        if pane is None:
            pane = Pane(tx.cents, 1, tx.time_ms, tx.time_ms, [evidence][: spec.max_evidence])
        else:
            if len(pane.evidence) < spec.max_evidence:
                pane.evidence.append(evidence)
            pane = Pane(
                pane.total + tx.cents,
                pane.transfers + 1,
                min(pane.first_ms, tx.time_ms),
                max(pane.last_ms, tx.time_ms),
                pane.evidence,
            )
        self.panes[start] = pane
        crossed = []
        open_ = [s for s in starts if s not in self.crossed]
        if open_ and self.total_of_panes() > spec.threshold_cents:  # else no window can cross
            for window_start in open_:
                if self.total(spec, window_start) > spec.threshold_cents:
                    self.crossed.add(window_start)
                    crossed.append(self.window(spec, window_start))
        return crossed

    def close(self, spec: WindowSpec, watermark: int) -> list[WindowResult]:
        """Close every window ending in ``(closed_ms, watermark]``; return the flagged ones.

        Panes no open window needs any more are dropped, and so are their crossed marks.
        """
        watermark = spec.floor(watermark)
        if watermark <= self.closed_ms:
            return []
        flagged = [
            self.window(spec, start)
            for start in self._starts(spec)
            if self.closed_ms < start + spec.size_ms <= watermark
            and self.total(spec, start) > spec.threshold_cents
        ]
        self.closed_ms = watermark
        horizon = watermark - spec.size_ms  # a pane at or before it is in no open window
        self.panes = {s: p for s, p in self.panes.items() if s > horizon}
        self.crossed = {s for s in self.crossed if s + spec.size_ms > watermark}
        return flagged

    def next_close_ms(self, spec: WindowSpec) -> int | None:
        """Watermark at which this pair next needs closing, or None if it has no panes: the end
        of its first open window above the threshold (an alert is due), or the moment its oldest
        pane is in no open window any more (state can shrink), whichever comes first. Windows
        below the threshold in between need no visit: closing them changes nothing. The windows
        ending before that moment are those holding the oldest pane and starting before it."""
        if not self.panes:
            return None
        first = min(self.panes)
        if self.total_of_panes() > spec.threshold_cents:  # else no window is above it
            for start in range(first - spec.size_ms + spec.slide_ms, first, spec.slide_ms):
                end = start + spec.size_ms
                if end > self.closed_ms and self.total(spec, start) > spec.threshold_cents:
                    return end
        return first + spec.size_ms

    def total(self, spec: WindowSpec, start: int) -> int:
        """Total of the window starting at ``start`` (cents)."""
        get = self.panes.get
        total = 0
        for s in range(start, start + spec.size_ms, spec.slide_ms):
            pane = get(s)
            if pane is not None:
                total += pane.total
        return total

    def total_of_panes(self) -> int:
        """Total of every open pane: no window's total is above it."""
        return sum(pane.total for pane in self.panes.values())

    def _starts(self, spec: WindowSpec) -> list[int]:
        """Starts of every window holding at least one pane, in order."""
        return sorted({s for pane in self.panes for s in spec.window_starts(pane)})

    def window(self, spec: WindowSpec, start: int) -> WindowResult:
        """Total, count, first/last event and evidence of the window starting at ``start``."""
        panes = [
            self.panes[s]
            for s in range(start, start + spec.size_ms, spec.slide_ms)
            if s in self.panes
        ]
        evidence = sorted(e for pane in panes for e in pane.evidence)
        count = sum(p.transfers for p in panes)
        return WindowResult(
            start_ms=start,
            total=sum(p.total for p in panes),
            transfers=count,
            first_ms=min(p.first_ms for p in panes),
            last_ms=max(p.last_ms for p in panes),
            evidence=evidence[: spec.max_evidence],
            truncated=count > min(len(evidence), spec.max_evidence),
        )

    def windows(self, spec: WindowSpec) -> Iterator[WindowResult]:
        """Every window still open (after ``closed_ms``) that holds at least one pane."""
        for start in self._starts(spec):
            if start + spec.size_ms > self.closed_ms:
                yield self.window(spec, start)

    # -- table encoding: compact JSON-able lists, keys as strings -----------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "p": self.partition,
            "closed": self.closed_ms,
            "panes": {
                str(s): [p.total, p.transfers, p.first_ms, p.last_ms, p.evidence]
                for s, p in self.panes.items()
            },
            "crossed": sorted(self.crossed),
            "seen": self.seen,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PairWindows:
        return cls(
            partition=data["p"],
            closed_ms=data["closed"],
            panes={
                int(s): Pane(t, c, f, la, [tuple(e) for e in ev])
                for s, (t, c, f, la, ev) in data["panes"].items()
            },
            crossed=set(data["crossed"]),
            seen=dict(data["seen"]),
        )


class DueIndex:
    """Which pairs of one partition and route have a window to close at which watermark.

    In memory only: rebuilt from the table after a rebalance. An entry may be stale (the pair
    was closed, moved on or changed route); processing it again is harmless because closing is
    idempotent and no pair holds a pane in a window it closed (``PairWindows.add``).
    """

    def __init__(self) -> None:
        self._heap: list[int] = []
        self._pairs: dict[int, set[str]] = {}

    def schedule(self, due_ms: int | None, pair: str) -> None:
        if due_ms is None:
            return
        pairs = self._pairs.get(due_ms)
        if pairs is None:
            pairs = self._pairs[due_ms] = set()
            heapq.heappush(self._heap, due_ms)
        pairs.add(pair)

    def pop_due(self, watermark: int) -> Iterator[str]:
        """Pairs due at or before ``watermark``, earliest first; each entry is handed out once."""
        while self._heap and self._heap[0] <= watermark:
            yield from sorted(self._pairs.pop(heapq.heappop(self._heap)))

    def __len__(self) -> int:
        return sum(len(p) for p in self._pairs.values())
