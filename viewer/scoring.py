"""Score the alerts of a run against the generator's ground truth. Pure: no Kafka, no output.

``fraud-verify`` (``viewer.verify``) reads the ground truth and the ``fraud`` topic and hands
both to :func:`score`. A scenario is *detected* when a flagged window of its pair overlaps its
span ``[first_event, last_event]``. Alerts are counted per case (``viewer.cases``): a case that
matches a structuring scenario is a true positive, any other case (a near miss, or a pair with
no scenario) a false positive. Aligned sliding windows cannot see a burst whole when it spans
more than SIZE - SLIDE (8 min by default) and no window start falls just before it: such
bursts are *missable by design*, reported apart and not counted as misses::

    SIZE = 10 min, SLIDE = 2 min          first                      last
    burst of 9 min:                         |··························|
    windows:        [00:00 ─────────────────────────── 00:10)          |
                               [00:02 ─────────────────────────── 00:12)
    the only window that could hold it starts at 00:00, before `first`, and ends before `last`
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

import orjson

from viewer.alerts import AlertBook, AlertKind, AlertRecord
from viewer.cases import Case, CaseBook
from viewer.errors import ViewerError


class ScenarioType(StrEnum):
    """The scenario types of the generator's ground truth."""

    STRUCTURING = "structuring"
    NEAR_MISS = "near_miss"


class BadGroundTruth(ViewerError):
    """The ground-truth file cannot be read: a line that is not a scenario the generator writes."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One injected scenario of the ground truth (``generator/truth.py``)."""

    type: ScenarioType
    sender: str
    receiver: str
    first_event: datetime
    last_event: datetime
    total: Decimal
    count: int
    complete: bool = True

    @property
    def span_s(self) -> float:
        return (self.last_event - self.first_event).total_seconds()


@dataclass(frozen=True, slots=True)
class GroundTruth:
    scenarios: tuple[Scenario, ...]
    malformed: int
    other: int


def read_ground_truth(lines: Iterable[str]) -> GroundTruth:
    """Scenarios of a JSON Lines ground truth; malformed-record entries are counted, not used."""
    scenarios: list[Scenario] = []
    malformed = other = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            raise BadGroundTruth(f"line {number}: not JSON ({err})") from None
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind == "malformed":
            malformed += 1
        elif kind in tuple(ScenarioType):
            scenarios.append(_scenario(entry, number))
        else:
            other += 1
    return GroundTruth(tuple(scenarios), malformed, other)


def _scenario(entry: Mapping[str, object], number: int) -> Scenario:
    try:
        sender, receiver = entry["sender"], entry["receiver"]
        count, complete = entry["count"], entry.get("complete", True)
        if not (isinstance(sender, str) and isinstance(receiver, str)):
            raise TypeError("sender and receiver must be strings")
        if not isinstance(count, int) or not isinstance(complete, bool):
            raise TypeError("count must be an integer, complete true or false")
        first, last = _instant(entry["first_event"]), _instant(entry["last_event"])
        if last < first:
            raise ValueError("last_event is before first_event")
        return Scenario(
            type=ScenarioType(str(entry["type"])),
            sender=sender,
            receiver=receiver,
            first_event=first,
            last_event=last,
            total=Decimal(str(entry["total"])),
            count=count,
            complete=complete,
        )
    except (KeyError, TypeError, ValueError, InvalidOperation) as err:
        raise BadGroundTruth(f"line {number}: not a scenario ({err!r})") from None


def _instant(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an RFC 3339 time, got {value!r}")
    stamp = datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        raise ValueError(f"time without a zone: {value!r}")
    return stamp.astimezone(UTC)


def _ms(stamp: datetime) -> int:
    return round(stamp.timestamp() * 1000)


def fits_a_window(scenario: Scenario, size_ms: int, slide_ms: int) -> bool:
    """Whether some aligned window ``[start, start + SIZE)`` holds the whole scenario.

    The windows holding ``first`` start in ``(first - SIZE, first]``; the latest of them,
    ``first - first % SLIDE``, reaches furthest, so the scenario fits iff ``last`` is before
    its end. Any span below SIZE - SLIDE fits; a span of SIZE or more never does.
    """
    first, last = _ms(scenario.first_event), _ms(scenario.last_event)
    return last < first - first % slide_ms + size_ms


# --- the alerts of the topic ---------------------------------------------------------------


class AlertLog:
    """What ``fraud-verify`` keeps of the topic: windows merged into cases, and each window's
    first ``threshold_crossed`` record (the moment of detection, which a merged alert loses)."""

    def __init__(self) -> None:
        self.book = AlertBook(capacity=10_000_000)
        self.cases = CaseBook(capacity=10_000_000)
        self.crossings: dict[str, AlertRecord] = {}
        self.records = 0

    def add(self, record: AlertRecord) -> None:
        self.records += 1
        if record.kind is AlertKind.THRESHOLD_CROSSED:
            self.crossings.setdefault(record.alert_id, record)
        alert = self.book.apply(record)
        if alert is not None:
            self.cases.apply(alert)


@dataclass(frozen=True, slots=True)
class Crossing:
    """The first alert of a scenario: its ``threshold_crossed`` record and the transaction that
    pushed the window over (its input partition and offset, when the evidence lists it)."""

    record: AlertRecord
    source: tuple[int, int] | None


def crossing_source(record: AlertRecord) -> tuple[int, int] | None:
    """Input (partition, offset) of the transaction that made ``record``'s window cross.

    At the crossing the window's latest event is that transaction (``last_event``); among
    transactions at the same instant the one read last (highest offset) completed the total.
    """
    at_last = [
        item
        for item in record.transactions
        if item.event_time == record.last_event
        and item.partition is not None
        and item.offset is not None
    ]
    if not at_last:
        return None  # capped evidence: the crossing transaction is not listed
    chosen = max(at_last, key=lambda item: item.offset or 0)
    assert chosen.partition is not None and chosen.offset is not None
    return (chosen.partition, chosen.offset)


# --- the score -----------------------------------------------------------------------------


@dataclass(slots=True)
class ScenarioResult:
    """How one scenario fared. Durations are seconds; None when they cannot be known."""

    scenario: Scenario
    fits_window: bool
    case_ids: list[str]
    windows: int
    crossing: Crossing | None
    # Event time from the scenario's first transfer to the one that crossed the threshold.
    crossing_after_s: float | None
    # Event time from the first transfer to the end of the first flagged window: when the
    # original job (which reports closed windows only) would have reported it at the earliest.
    close_after_s: float | None
    # Wall clock from the crossing transaction's Kafka timestamp to the alert's detected_at.
    processing_s: float | None = None

    @property
    def detected(self) -> bool:
        return self.windows > 0

    @property
    def scored(self) -> bool:
        """Counted in recall: complete, and (for structuring) held whole by some window."""
        return self.scenario.complete and (
            self.fits_window or self.scenario.type is not ScenarioType.STRUCTURING
        )


@dataclass(frozen=True, slots=True)
class Latency:
    median_s: float
    max_s: float

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Latency | None:
        known = [value for value in values if value is not None]
        if not known:
            return None
        return cls(statistics.median(known), max(known))


@dataclass(slots=True)
class TypeScore:
    """The scenarios of one type: how many, how many scored, detected and how fast."""

    type: ScenarioType
    scenarios: int = 0
    incomplete: int = 0
    missable: int = 0
    scored: int = 0
    detected: int = 0
    missable_detected: int = 0
    results: list[ScenarioResult] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        """Detected / scored for structuring; None for near misses (they must not alert)."""
        if self.type is not ScenarioType.STRUCTURING or not self.scored:
            return None
        return self.detected / self.scored

    def latency(self, what: str) -> Latency | None:
        scored = [result for result in self.results if result.scored and result.detected]
        return Latency.of(getattr(result, what) for result in scored)


@dataclass(slots=True)
class Score:
    types: dict[ScenarioType, TypeScore]
    cases: int
    true_cases: int
    near_miss_cases: list[Case]
    unexplained_cases: list[Case]
    windows: int
    records: int

    @property
    def precision(self) -> float | None:
        """Cases that match a structuring scenario, over all cases; None when there are none."""
        return self.true_cases / self.cases if self.cases else None

    @property
    def passed(self) -> bool:
        """Every scored structuring scenario detected and no near miss alerted."""
        structuring = self.types[ScenarioType.STRUCTURING]
        near_miss = self.types[ScenarioType.NEAR_MISS]
        return structuring.detected == structuring.scored and near_miss.detected == 0


def _overlaps(case_window_start: datetime, case_window_end: datetime, scenario: Scenario) -> bool:
    return case_window_start <= scenario.last_event and case_window_end > scenario.first_event


def score(truth: GroundTruth, log: AlertLog, *, size_ms: int, slide_ms: int) -> Score:
    """Match scenarios and cases by pair and time; see the module docstring for the rules."""
    by_pair: dict[tuple[str, str], list[Case]] = {}
    for case in log.cases.cases():
        by_pair.setdefault((case.sender, case.receiver), []).append(case)
    types = {kind: TypeScore(kind) for kind in ScenarioType}
    matched: dict[str, set[ScenarioType]] = {}
    for scenario in truth.scenarios:
        fits = fits_a_window(scenario, size_ms, slide_ms)
        result = _result(scenario, fits, by_pair.get((scenario.sender, scenario.receiver), []), log)
        for case_id in result.case_ids:
            matched.setdefault(case_id, set()).add(scenario.type)
        tally = types[scenario.type]
        tally.scenarios += 1
        tally.results.append(result)
        if not scenario.complete:
            tally.incomplete += 1
        elif result.scored:
            tally.scored += 1
            tally.detected += result.detected
        else:
            tally.missable += 1
            tally.missable_detected += result.detected
    cases = log.cases.cases()
    true_cases = [c for c in cases if ScenarioType.STRUCTURING in matched.get(c.case_id, ())]
    near = [c for c in cases if matched.get(c.case_id) == {ScenarioType.NEAR_MISS}]
    unexplained = [c for c in cases if c.case_id not in matched]
    return Score(
        types=types,
        cases=len(cases),
        true_cases=len(true_cases),
        near_miss_cases=near,
        unexplained_cases=unexplained,
        windows=len(log.book),
        records=log.records,
    )


def _result(scenario: Scenario, fits: bool, cases: list[Case], log: AlertLog) -> ScenarioResult:
    case_ids: list[str] = []
    windows = []
    for case in cases:
        hits = [
            window
            for window in case.windows
            if _overlaps(window.window_start, window.window_end, scenario)
        ]
        if hits:
            case_ids.append(case.case_id)
            windows.extend(hits)
    crossings = [log.crossings[w.alert_id] for w in windows if w.alert_id in log.crossings]
    first = min(
        crossings, key=lambda r: (r.detected_at, r.last_event or r.detected_at), default=None
    )
    crossing_after = None
    crossing = None
    if first is not None:
        crossing = Crossing(first, crossing_source(first))
        if first.last_event is not None:
            crossing_after = (first.last_event - scenario.first_event).total_seconds()
    closed_ends = [w.window_end for w in windows if w.closed_at is not None]
    close_after = (min(closed_ends) - scenario.first_event).total_seconds() if closed_ends else None
    return ScenarioResult(
        scenario=scenario,
        fits_window=fits,
        case_ids=case_ids,
        windows=len(windows),
        crossing=crossing,
        crossing_after_s=crossing_after,
        close_after_s=close_after,
    )


def add_processing_latency(
    result: ScenarioResult, timestamps: Mapping[tuple[int, int], int]
) -> None:
    """Fill in the wall-clock latency from the crossing transaction's Kafka timestamp."""
    crossing = result.crossing
    if crossing is None or crossing.source is None or crossing.source not in timestamps:
        return
    appended_s = timestamps[crossing.source] / 1000
    result.processing_s = crossing.record.detected_at.timestamp() - appended_s
