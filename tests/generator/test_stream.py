"""The pure generator: determinism, layouts, clock, keys, amounts, faults and counts."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from generator import ConfigError, GeneratorConfig, Record, generate
from generator.config import DEFAULT_START_MS
from generator.formats import (
    TimestampFormatter,
    format_amount,
    format_decimal,
    format_rfc850,
    format_rfc3339,
    parse_rfc3339,
)
from generator.malformed import DLQ_REASONS
from tests.generator.checker import Line, classify

MIXED = GeneratorConfig(
    count=3000,
    accounts=50,
    seed=7,
    mean_gap_ms=300,
    scenarios=6,
    malformed=0.05,
    out_of_order=0.03,
    out_of_order_max_ms=30_000,
)


def run(cfg: GeneratorConfig) -> list[Record]:
    return list(generate(cfg))


def in_order(records: list[Record]) -> list[Record]:
    return [r for r in records if r.kind not in ("malformed", "out_of_order")]


@pytest.mark.parametrize("layout", ["rfc850", "rfc3339"])
def test_the_same_seed_gives_byte_identical_records(layout: str) -> None:
    cfg = replace(MIXED, layout=layout)  # type: ignore[arg-type]
    assert run(cfg) == run(cfg)
    other = run(replace(cfg, seed=8))
    assert [r.value for r in other] != [r.value for r in run(cfg)]


@pytest.mark.parametrize("count", [0, 1, 7, 500, 3000])
def test_count_is_exactly_the_number_of_records(count: int) -> None:
    assert len(run(replace(MIXED, count=count))) == count


def test_the_example_line_of_the_lab_is_rendered_exactly() -> None:
    ms = int(datetime(2017, 7, 23, 1, 6, 47, tzinfo=UTC).timestamp()) * 1000
    assert format_rfc850(ms) == "Sunday, 23-Jul-17 01:06:47 UTC"
    assert format_rfc850(ms + 999) == "Sunday, 23-Jul-17 01:06:47 UTC"  # seconds precision
    assert format_rfc3339(ms) == "2017-07-23T01:06:47Z"
    assert format_rfc3339(ms + 250) == "2017-07-23T01:06:47.250Z"
    assert parse_rfc3339("2017-07-23T01:06:47.250Z") == ms + 250
    assert parse_rfc3339("2017-07-23T03:06:47+02:00") == ms
    with pytest.raises(ValueError, match="no zone"):
        parse_rfc3339("2017-07-23T01:06:47")


def test_the_cached_formatter_agrees_with_the_plain_one_across_days_and_years() -> None:
    rfc850, rfc3339 = TimestampFormatter("rfc850"), TimestampFormatter("rfc3339")
    start = DEFAULT_START_MS - 3_000
    # Steps that cross seconds, days, a month end, a leap day and a year end.
    for ms in itertools.chain(
        range(start, start + 10_000, 137),
        range(1_451_606_390_000, 1_451_606_410_000, 999),  # 2015-12-31T23:59:50Z ...
        range(1_456_703_990_000, 1_456_704_010_000, 1_001),  # 2016-02-28/29
    ):
        assert rfc850(ms) == format_rfc850(ms)
        assert rfc3339(ms) == format_rfc3339(ms)


@pytest.mark.parametrize("layout", ["rfc850", "rfc3339"])
def test_valid_lines_round_trip_through_datetime_parsing(layout: str) -> None:
    cfg = replace(MIXED, layout=layout)  # type: ignore[arg-type]
    records = [r for r in run(cfg) if r.kind != "malformed"]
    pattern = (
        r"(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
        r"\d\d-[A-Z][a-z]{2}-\d\d \d\d:\d\d:\d\d UTC"
        if layout == "rfc850"
        else r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z"
    )
    with_millis = 0
    for record in records:
        stamp = record.value.decode().split(";")[0]
        assert re.fullmatch(pattern, stamp), stamp
        assert record.event_time_ms is not None
        if layout == "rfc850":
            parsed = datetime.strptime(stamp, "%A, %d-%b-%y %H:%M:%S UTC").replace(tzinfo=UTC)
            assert parsed.strftime("%A") == stamp.split(",")[0]  # the weekday is the real one
            assert record.event_time_ms % 1000 == 0
        else:
            parsed = datetime.fromisoformat(stamp)
            # a fraction is written exactly when there are milliseconds
            assert ("." in stamp) == (record.event_time_ms % 1000 != 0)
            with_millis += "." in stamp
        assert round(parsed.timestamp() * 1000) == record.event_time_ms
    if layout == "rfc3339":
        assert with_millis > len(records) // 2


def test_every_valid_record_reads_back_as_what_it_claims() -> None:
    for record in run(MIXED):
        line = classify(record.value)
        if record.kind == "malformed":
            continue
        assert isinstance(line, Line), (record, line)
        assert line.time_ms == record.event_time_ms
        assert line.cents == record.amount_cents
        assert line.sender != line.receiver


@pytest.mark.parametrize("layout", ["rfc850", "rfc3339"])
def test_every_malformed_record_has_the_reason_an_independent_reader_gives(layout: str) -> None:
    cfg = replace(MIXED, layout=layout, count=6000, malformed=0.2)  # type: ignore[arg-type]
    malformed = [r for r in run(cfg) if r.kind == "malformed"]
    assert len(malformed) > 1000
    for record in malformed:
        assert record.expected_reason in DLQ_REASONS
        assert classify(record.value) == record.expected_reason, record
        assert record.key is None
        assert record.event_time_ms is None
        assert b"\n" not in record.value  # stays one line when piped
    assert {r.expected_reason for r in malformed} == set(DLQ_REASONS)
    assert b"" in {r.value for r in malformed}  # the empty record is among them


def test_the_event_clock_only_goes_forward_and_faults_do_not_move_it() -> None:
    records = run(MIXED)
    times = [r.event_time_ms or 0 for r in in_order(records)]
    assert times == sorted(times)
    assert times[0] == MIXED.start_ms
    # about mean_gap_ms per normal record
    normal = sum(1 for r in records if r.kind == "normal")
    span = times[-1] - times[0]
    assert 0.8 * normal * MIXED.mean_gap_ms < span < 1.2 * normal * MIXED.mean_gap_ms


@pytest.mark.parametrize("layout", ["rfc850", "rfc3339"])
def test_out_of_order_records_are_behind_the_clock_and_bounded(layout: str) -> None:
    cfg = replace(MIXED, layout=layout, out_of_order=0.2)  # type: ignore[arg-type]
    latest: int | None = None
    late = 0
    for record in run(cfg):
        if record.kind == "out_of_order":
            late += 1
            assert latest is not None and record.event_time_ms is not None
            assert latest - cfg.out_of_order_max_ms <= record.event_time_ms < latest
        elif record.event_time_ms is not None:
            latest = record.event_time_ms if latest is None else max(latest, record.event_time_ms)
    assert late > 300


def test_faults_change_where_normal_records_fall_not_what_they_are() -> None:
    clean = [r.value for r in run(replace(MIXED, malformed=0, out_of_order=0, scenarios=0))]
    noisy = [r.value for r in run(replace(MIXED, count=4000, scenarios=0)) if r.kind == "normal"]
    assert noisy[: len(clean) // 2] == clean[: len(clean) // 2]


def test_keyed_records_carry_their_pair_and_unkeyed_none() -> None:
    for record in run(MIXED):
        if record.kind == "malformed":
            assert record.key is None
            continue
        _, sender, receiver, _ = record.value.decode().split(";")
        assert record.key == f"{sender}:{receiver}".encode()
    assert all(r.key is None for r in run(replace(MIXED, keyed=False)))


def test_accounts_come_from_the_pool() -> None:
    records = [r for r in run(MIXED) if r.kind in ("normal", "out_of_order")]
    ids = {int(x) for r in records for x in r.value.decode().split(";")[1:3]}
    assert ids <= set(range(MIXED.accounts))
    assert len(ids) > MIXED.accounts * 0.9


def test_amount_formatting_never_goes_through_floats() -> None:
    assert format_amount(781000) == "7810"
    assert format_amount(781050) == "7810.5"
    assert format_amount(781050, two_decimals=True) == "7810.50"
    assert format_amount(781007) == "7810.07"
    assert format_amount(1) == "0.01"
    assert format_decimal(1234567) == "12345.67"
    assert format_decimal(100) == "1.00"
    # a float would print 0.30000000000000004 somewhere along this road
    assert format_decimal(10 + 20) == "0.30"


def test_amounts_are_mostly_small_with_some_cents_and_whole_dollars_on_request() -> None:
    records = [r for r in run(MIXED) if r.kind == "normal"]
    amounts = [r.value.decode().split(";")[3] for r in records]
    assert all(re.fullmatch(r"[1-9][0-9]*(\.[0-9]{1,2})?", a) for a in amounts)
    assert any(re.fullmatch(r"\d+\.\d", a) for a in amounts)
    assert any(re.fullmatch(r"\d+\.\d\d", a) for a in amounts)
    cents = [r.amount_cents or 0 for r in records]
    assert sum(c <= 2000_00 for c in cents) > 0.9 * len(cents)
    assert max(cents) <= MIXED.max_amount_cents
    whole = run(replace(MIXED, cents=False, malformed=0))
    assert all(b"." not in r.value.split(b";")[3] for r in whole)


def test_the_real_clock_stamps_each_record_with_the_wall_clock() -> None:
    ticks = itertools.count(1_700_000_000_000, 7)
    cfg = GeneratorConfig(clock="real", duration=30, layout="rfc3339", seed=3)
    records = run_with_clock(cfg, lambda: next(ticks))
    times = [r.event_time_ms or 0 for r in records]
    assert times == sorted(times)
    assert times[0] >= 1_700_000_000_000
    assert times[-1] <= 1_700_000_000_000 + 30_000 + 7  # the duration is wall time here
    assert len(records) > 4000


def run_with_clock(cfg: GeneratorConfig, wall: object) -> list[Record]:
    return list(generate(cfg, wall_ms=wall))  # type: ignore[arg-type]


def test_a_simulated_duration_bounds_event_time() -> None:
    cfg = GeneratorConfig(duration=600, seed=4, scenarios=2)
    records = run(cfg)
    times = [r.event_time_ms for r in records if r.event_time_ms is not None]
    assert max(times) <= cfg.start_ms + 600_000
    assert 500 < len(records) < 700


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"accounts": 1}, "accounts"),
        ({"count": -1}, "count"),
        ({"malformed": 0.6, "out_of_order": 0.5}, "sum < 1"),
        ({"scenarios": 2, "count": None}, "scenarios=N needs"),
        ({"scenarios": 2, "scenarios_every": 60.0}, "not both"),
        ({"scenarios": 2, "clock": "real"}, "real clock needs a duration"),
        ({"out_of_order_max_ms": 500}, ">= 1000 ms with rfc850"),
        ({"start_ms": parse_rfc3339("2070-01-01T00:00:00Z")}, "two-digit year"),
        ({"layout": "iso"}, "layout"),
        ({"max_amount_cents": 0}, "max amount"),
    ],
)
def test_contradictory_settings_are_one_clear_error(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        replace(GeneratorConfig(count=10), **changes)  # type: ignore[arg-type]
