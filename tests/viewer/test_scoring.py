"""Scoring alerts against ground truth (viewer.scoring), with records made in memory.

Windows are 10 minutes sliding by 2; times are minutes after T0 = 2017-07-23 01:00 UTC.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from tests.viewer.records import MINUTE_MS, T0_MS, encoded, rfc3339, window_record
from viewer.alerts import parse_record
from viewer.scoring import (
    AlertLog,
    BadGroundTruth,
    ScenarioType,
    add_processing_latency,
    crossing_source,
    fits_a_window,
    read_ground_truth,
    score,
)

SIZE, SLIDE = 10 * MINUTE_MS, 2 * MINUTE_MS


def minute(offset: float) -> int:
    return T0_MS + round(offset * MINUTE_MS)


def truth_line(
    kind: str, first: float, last: float, *, pair: tuple[str, str] = ("66", "26"), **extra: Any
) -> str:
    entry = {
        "type": kind,
        "sender": pair[0],
        "receiver": pair[1],
        "first_event": rfc3339(minute(first)),
        "last_event": rfc3339(minute(last)),
        "total": "12000.00",
        "count": 6,
        "complete": True,
        **extra,
    }
    return orjson.dumps(entry).decode()


def scenario(first: float, last: float) -> Any:
    (found,) = read_ground_truth([truth_line("structuring", first, last)]).scenarios
    return found


# --- missable by design ----------------------------------------------------------------------


def test_a_burst_shorter_than_size_minus_slide_always_fits() -> None:
    #   windows     [0 ─────────── 10)
    #                      [2 ─────────── 12)
    #   burst             1.9 ·········· 9.9      8 min: [0, 10) holds it
    for first in (0, 0.5, 1.0, 1.9, 1.999):
        assert fits_a_window(scenario(first, first + 8), SIZE, SLIDE)


def test_a_burst_between_size_minus_slide_and_size_fits_only_if_aligned() -> None:
    #   windows     [0 ─────────── 10)
    #                      [2 ─────────── 12)
    #   burst      0.5 ·········· 9.5             fits [0, 10)
    #   burst             1.0 ·········· 10.0     [0, 10) ends at 10 (exclusive), [2, 12) starts
    #                                             after 1.0: no window holds it whole
    assert fits_a_window(scenario(0.5, 9.5), SIZE, SLIDE)
    assert not fits_a_window(scenario(1.0, 10.0), SIZE, SLIDE)
    assert not fits_a_window(scenario(1.5, 10.5), SIZE, SLIDE)
    assert fits_a_window(scenario(2.0, 11.9), SIZE, SLIDE)


def test_a_burst_of_size_or_more_never_fits() -> None:
    assert not fits_a_window(scenario(0, 10), SIZE, SLIDE)
    assert not fits_a_window(scenario(0, 25), SIZE, SLIDE)


# --- ground truth ----------------------------------------------------------------------------


def test_ground_truth_reads_scenarios_and_counts_the_rest() -> None:
    lines = [
        truth_line("structuring", 1, 4),
        "",
        '{"type": "malformed", "reason": "bad_amount", "value_b64": "eA=="}',
        truth_line("near_miss", 20, 23, complete=False),
        '{"type": "something_new"}',
    ]

    truth = read_ground_truth(lines)

    assert [(s.type, s.complete) for s in truth.scenarios] == [
        (ScenarioType.STRUCTURING, True),
        (ScenarioType.NEAR_MISS, False),
    ]
    assert truth.scenarios[0].total == Decimal("12000.00")
    assert truth.scenarios[0].span_s == 180
    assert (truth.malformed, truth.other) == (1, 1)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{oops", "line 1: not JSON"),
        ('{"type": "structuring", "sender": "1"}', "line 1: not a scenario"),
        (truth_line("structuring", 5, 1), "last_event is before first_event"),
        (truth_line("structuring", 1, 5, first_event="2017-07-23T01:00:00"), "without a zone"),
        (truth_line("structuring", 1, 5, count="6"), "count must be an integer"),
    ],
)
def test_bad_ground_truth_is_one_line_naming_the_line(line: str, message: str) -> None:
    with pytest.raises(BadGroundTruth, match=message):
        read_ground_truth([line])


# --- matching --------------------------------------------------------------------------------


def log_of(*records: dict[str, Any]) -> AlertLog:
    log = AlertLog()
    for record in records:
        log.add(parse_record(encoded(record)))
    return log


def flagged(
    start: float,
    transfers: list[tuple[float, str, int]],
    *,
    pair: tuple[str, str] = ("66", "26"),
    closed: bool = True,
    crossed_at: str = "2026-11-28T13:00:05.000Z",
) -> list[dict[str, Any]]:
    """The records of one flagged window: crossed (at the last transfer) and closed."""
    txs = [(minute(t), amount, 4, offset) for t, amount, offset in transfers]
    common = {"sender": pair[0], "receiver": pair[1]}
    records = [window_record("threshold_crossed", minute(start), "10500.00", txs, **common)]
    records[0]["detected_at"] = crossed_at
    if closed:
        records.append(window_record("window_closed", minute(start), "10500.00", txs, **common))
    return records


BURST = [(1.0, "5000", 100), (2.5, "5500", 101)]  # crosses at minute 2.5, offset 101


def test_detected_scenarios_true_cases_near_misses_and_unexplained_cases() -> None:
    truth = read_ground_truth(
        [
            truth_line("structuring", 1, 2.5),  # detected by windows -8.. 0 of 66 -> 26
            truth_line("structuring", 30, 33, pair=("1", "2")),  # missed
            truth_line("near_miss", 40, 43, pair=("3", "4")),  # alerted: a false positive
            truth_line("near_miss", 50, 53, pair=("5", "6")),  # quiet, as it should be
        ]
    )
    log = log_of(
        *flagged(-8, BURST),
        *flagged(-6, BURST),
        *flagged(0, BURST, closed=False),
        *flagged(40, [(41, "10001", 7)], pair=("3", "4")),
        *flagged(60, [(61, "20000", 8)], pair=("9", "9x")),  # no scenario at all
        *flagged(20, [(21, "20000", 9)]),  # 66 -> 26 again, long after its scenario
    )

    result = score(truth, log, size_ms=SIZE, slide_ms=SLIDE)

    structuring = result.types[ScenarioType.STRUCTURING]
    near_miss = result.types[ScenarioType.NEAR_MISS]
    assert (structuring.scenarios, structuring.scored, structuring.detected) == (2, 2, 1)
    assert structuring.recall == 0.5
    assert (near_miss.scenarios, near_miss.detected, near_miss.recall) == (2, 1, None)
    assert (result.cases, result.true_cases) == (4, 1)
    assert result.precision == 0.25
    assert [c.sender for c in result.near_miss_cases] == ["3"]
    assert sorted(c.case_id for c in result.unexplained_cases) == [
        f"66:26:{minute(20)}",
        f"9:9x:{minute(60)}",
    ]
    assert not result.passed
    hit = structuring.results[0]
    assert (hit.windows, hit.case_ids) == (3, [f"66:26:{minute(-8)}"])


def test_latencies_in_event_time_and_wall_clock() -> None:
    truth = read_ground_truth([truth_line("structuring", 1, 2.5)])
    log = log_of(
        *flagged(-6, BURST, crossed_at="2026-11-28T13:00:07.000Z"),
        *flagged(-8, BURST, crossed_at="2026-11-28T13:00:05.000Z"),  # the first alert
    )

    result = score(truth, log, size_ms=SIZE, slide_ms=SLIDE)
    (hit,) = result.types[ScenarioType.STRUCTURING].results

    assert hit.crossing is not None
    assert hit.crossing.record.alert_id == f"66:26:{minute(-8)}"
    assert hit.crossing_after_s == 90  # crossed by the transfer at 2.5, 1.5 min after 1.0
    assert hit.close_after_s == 60  # window [-8, 2) ended at 2, 1 min after the first transfer
    assert hit.crossing.source == (4, 101)
    crossed_s = hit.crossing.record.detected_at.timestamp()
    add_processing_latency(hit, {(4, 101): round((crossed_s - 0.75) * 1000)})
    assert hit.processing_s == pytest.approx(0.75)
    latency = result.types[ScenarioType.STRUCTURING].latency("crossing_after_s")
    assert latency is not None and (latency.median_s, latency.max_s) == (90, 90)


def test_missable_bursts_are_not_misses_and_count_apart_when_detected() -> None:
    truth = read_ground_truth(
        [
            truth_line("structuring", 1.0, 10.0),  # 9 min, no aligned window holds it
            truth_line("structuring", 1.0, 12.0, pair=("1", "2")),  # 11 min, detected anyway
            truth_line("structuring", 1.0, 3.0, pair=("5", "6"), complete=False),
        ]
    )
    log = log_of(*flagged(2, [(3, "10001", 1)], pair=("1", "2")))

    result = score(truth, log, size_ms=SIZE, slide_ms=SLIDE)

    structuring = result.types[ScenarioType.STRUCTURING]
    assert (structuring.scored, structuring.missable, structuring.missable_detected) == (0, 2, 1)
    assert structuring.incomplete == 1
    assert structuring.recall is None
    assert result.passed  # nothing that could have been detected was missed


def test_the_crossing_transaction_is_the_latest_listed_one_at_the_crossing_time() -> None:
    ties = [(minute(2), "100", 3, 7), (minute(2), "200", 3, 9), (minute(1), "300", 3, 4)]
    record = parse_record(encoded(window_record("threshold_crossed", minute(0), "10500", ties)))
    assert crossing_source(record) == (3, 9)

    capped = [(minute(1), "300", 3, 4)]
    document = window_record("threshold_crossed", minute(0), "10500", capped, truncated=True)
    document["last_event"] = rfc3339(minute(2))
    assert crossing_source(parse_record(encoded(document))) is None


def test_windows_match_a_scenario_when_they_overlap_its_span() -> None:
    #   scenario                 0 ········· 3
    #   [-10, 0)     ──────────)                  ends as the scenario begins: no overlap
    #   [-10 + 1 ms, 0 + 1 ms)   ─)               holds its first instant: overlaps
    truth = read_ground_truth([truth_line("structuring", 0, 3)])
    before = window_record("window_closed", minute(-10), "10500", [(minute(-1), "10500", 0, 1)])
    edge = window_record("window_closed", minute(-10) + 1, "10500", [(minute(0), "1", 0, 2)])

    apart = score(truth, log_of(before), size_ms=SIZE, slide_ms=SLIDE)
    touching = score(truth, log_of(edge), size_ms=SIZE, slide_ms=SLIDE)

    assert apart.types[ScenarioType.STRUCTURING].detected == 0
    assert touching.types[ScenarioType.STRUCTURING].detected == 1
