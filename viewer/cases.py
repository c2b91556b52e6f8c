"""Cases: a pair's flagged windows of one burst, merged into what a person investigates.

Pure logic, no I/O. One burst of transfers fills up to SIZE/SLIDE overlapping windows, and the
topic holds one alert per window (that is what Flink reports). :class:`CaseBook` groups a pair's
windows that overlap or touch into one :class:`Case`:

    windows of 66 -> 26:  [00:00 ───── 00:10)                      one case: the windows are
                                [00:02 ───── 00:12)                connected by overlaps
                                        [00:10 ───── 00:20)        (touching counts too)
                                                                [00:24 ───── 00:34)  another

A case's total is the *largest* window total, not a sum: overlapping windows share
transactions, so adding them up would count the same transfer several times. A case is
``crossed`` while any of its windows is open and ``confirmed`` once every one has closed; a
confirmed case that gains a new window is crossed again until that window closes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from viewer.alerts import Alert, AlertStatus, Evidence

Pair = tuple[str, str]


class CaseStatus(StrEnum):
    """``crossed`` while a window of the case is open, ``confirmed`` when all have closed."""

    CROSSED = "crossed"
    CONFIRMED = "confirmed"


@dataclass(frozen=True, slots=True)
class Case:
    """One burst of one pair: its flagged windows (oldest first) and what they add up to.

    ``case_id`` is the ``alert_id`` of the case's earliest window, so it reads like the topic's
    ids and names the same case for every viewer that has read the same windows.
    """

    case_id: str
    sender: str
    receiver: str
    status: CaseStatus
    windows: tuple[Alert, ...]
    total: Decimal
    closed_windows: int
    first_event: datetime | None
    last_event: datetime | None
    transactions: tuple[Evidence, ...]
    truncated: bool
    detected_at: datetime
    confirmed_at: datetime | None
    updated_at: datetime

    @property
    def window_start(self) -> datetime:
        return self.windows[0].window_start

    @property
    def window_end(self) -> datetime:
        return max(window.window_end for window in self.windows)

    @property
    def alert_ids(self) -> tuple[str, ...]:
        return tuple(window.alert_id for window in self.windows)

    def answers_to(self, wanted: str) -> bool:
        """Whether ``wanted`` names this case: its id or the ``alert_id`` of one of its windows."""
        return wanted == self.case_id or wanted in self.alert_ids

    @classmethod
    def of(cls, windows: Iterable[Alert]) -> Case:
        """The case made of ``windows`` (one pair, connected; at least one)."""
        ordered = tuple(sorted(windows, key=lambda window: (window.window_start, window.alert_id)))
        first = ordered[0]
        closed = [window for window in ordered if window.status is AlertStatus.CLOSED]
        confirmed = len(closed) == len(ordered)
        firsts = [window.first_event for window in ordered if window.first_event is not None]
        lasts = [window.last_event for window in ordered if window.last_event is not None]
        detections = [
            stamp
            for window in ordered
            for stamp in (window.crossed_at, window.closed_at)
            if stamp is not None
        ]
        return cls(
            case_id=first.alert_id,
            sender=first.sender,
            receiver=first.receiver,
            status=CaseStatus.CONFIRMED if confirmed else CaseStatus.CROSSED,
            windows=ordered,
            total=max(window.total for window in ordered),
            closed_windows=len(closed),
            first_event=min(firsts, default=None),
            last_event=max(lasts, default=None),
            transactions=_union(ordered),
            truncated=any(window.truncated for window in ordered),
            detected_at=min(detections),
            confirmed_at=max(window.updated_at for window in closed) if confirmed else None,
            updated_at=max(window.updated_at for window in ordered),
        )


def _union(windows: Iterable[Alert]) -> tuple[Evidence, ...]:
    """The distinct transactions of overlapping windows, oldest first.

    A transaction sits in several windows; its input partition and offset identify it. Evidence
    without a location falls back to (event time, amount), which can merge two equal transfers
    made in the same millisecond: the count is then a lower bound, never an overcount.
    """
    distinct: dict[tuple[object, ...], Evidence] = {}
    for window in windows:
        for item in window.transactions:
            if item.partition is not None and item.offset is not None:
                key: tuple[object, ...] = (item.partition, item.offset)
            else:
                key = (item.event_time, item.amount)
            distinct.setdefault(key, item)
    return tuple(
        sorted(
            distinct.values(),
            key=lambda item: (item.event_time, item.partition or 0, item.offset or 0),
        )
    )


@dataclass(frozen=True, slots=True)
class CaseChange:
    """A case as it now stands, and the ids of cases that no longer exist because of it.

    ``replaces`` is not empty when the new window joined two cases into one (the later one's id
    goes) or came before the case's earliest window (the case's id moves to the new window).
    """

    case: Case
    replaces: tuple[str, ...] = ()


def _connected(alert: Alert, case: Case) -> bool:
    """Whether ``alert``'s window overlaps or touches the span of ``case``'s windows."""
    return alert.window_start <= case.window_end and case.window_start <= alert.window_end


class CaseBook:
    """The cases seen so far; :meth:`apply` takes each change of a window and says what changed.

    Bounded like :class:`~viewer.alerts.AlertBook`: at most ``capacity`` cases are kept, the
    least recently changed go first.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._cases: OrderedDict[str, Case] = OrderedDict()
        self._by_pair: dict[Pair, set[str]] = {}

    def __len__(self) -> int:
        return len(self._cases)

    def get(self, case_id: str) -> Case | None:
        return self._cases.get(case_id)

    def cases(self) -> list[Case]:
        """Every case kept, least recently changed first."""
        return list(self._cases.values())

    def apply(self, alert: Alert) -> CaseChange:
        """Put the new state of one window into its case, merging cases it connects."""
        pair = (alert.sender, alert.receiver)
        joined = [
            self._cases[case_id]
            for case_id in sorted(self._by_pair.get(pair, ()))
            if _connected(alert, self._cases[case_id])
        ]
        windows = {window.alert_id: window for case in joined for window in case.windows}
        windows[alert.alert_id] = alert
        case = Case.of(windows.values())
        for old in joined:
            self._forget(old.case_id)
        self._cases[case.case_id] = case
        self._by_pair.setdefault(pair, set()).add(case.case_id)
        while len(self._cases) > self._capacity:
            self._forget(next(iter(self._cases)))
        replaced = tuple(old.case_id for old in joined if old.case_id != case.case_id)
        return CaseChange(case, replaced)

    def _forget(self, case_id: str) -> None:
        case = self._cases.pop(case_id)
        pair = (case.sender, case.receiver)
        ids = self._by_pair[pair]
        ids.discard(case_id)
        if not ids:
            del self._by_pair[pair]
