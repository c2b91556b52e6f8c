"""Injected structuring / near-miss scenarios and their ground truth."""

from __future__ import annotations

import base64
import itertools
import json
import random
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generator import (
    GeneratorConfig,
    MalformedTruth,
    Record,
    ScenarioTruth,
    generate,
    ground_truth,
    write_ground_truth,
)
from generator.formats import parse_rfc3339
from generator.scenarios import (
    MAX_TRANSFER_CENTS,
    MIN_TRANSFER_CENTS,
    THRESHOLD_CENTS,
    scenario_accounts,
    split_total,
)

CFG = GeneratorConfig(count=20_000, accounts=100, seed=5, scenarios=12, malformed=0.01)
WINDOW_MS, SLIDE_MS = 600_000, 120_000


def scenario_records(records: list[Record]) -> dict[int, list[Record]]:
    groups: dict[int, list[Record]] = {}
    for record in records:
        if record.scenario is not None:
            groups.setdefault(record.scenario.index, []).append(record)
    return groups


def test_the_requested_number_of_scenarios_is_injected_every_third_a_near_miss() -> None:
    truth = [e for e in ground_truth(generate(CFG)) if isinstance(e, ScenarioTruth)]
    assert [t.type for t in truth] == ["structuring", "structuring", "near_miss"] * 4
    assert all(t.complete for t in truth)
    only = replace(CFG, near_misses=False)
    assert {t.type for t in ground_truth(generate(only)) if isinstance(t, ScenarioTruth)} == {
        "structuring"
    }


def test_ground_truth_totals_are_the_sums_of_the_scenario_records() -> None:
    records = list(generate(CFG))
    groups = scenario_records(records)
    truth = [e for e in ground_truth(records) if isinstance(e, ScenarioTruth)]
    assert len(truth) == len(groups) == CFG.scenarios
    for entry, group in zip(truth, groups.values(), strict=True):
        amounts = [Decimal(r.value.decode().split(";")[3]) for r in group]
        assert Decimal(entry.to_json()["total"]) == sum(amounts)
        assert entry.count == len(group) == group[0].scenario.transfers  # type: ignore[union-attr]
        assert entry.first_event_ms == group[0].event_time_ms
        assert entry.last_event_ms == group[-1].event_time_ms
        assert all(a < 3000 for a in amounts)
        assert 5 <= len(group) <= 20
        if entry.type == "structuring":
            assert entry.total_cents > 12_000_00 - 1 > THRESHOLD_CENTS
        else:
            assert entry.total_cents <= 9_999_99


def test_each_scenario_fits_inside_one_sliding_window() -> None:
    # Flink windows [start, start+10min), start % 2min == 0: the latest window starting at or
    # before the first transfer must also hold the last one, or the total is never seen whole.
    #   first ──────── last
    #   |<- ≤ 2 min ->|<─────────── ≥ 8 min ───────────>|
    #   window start                                window end
    for group in scenario_records(list(generate(CFG))).values():
        first = group[0].event_time_ms or 0
        last = group[-1].event_time_ms or 0
        window_start = first - first % SLIDE_MS
        assert last < window_start + WINDOW_MS
        assert last - first <= 240_000


def test_scenario_pairs_are_disjoint_and_outside_the_normal_pool() -> None:
    records = list(generate(CFG))
    refs = [group[0].scenario for group in scenario_records(records).values()]
    pairs = [(ref.sender, ref.receiver) for ref in refs if ref is not None]
    assert len(pairs) == CFG.scenarios
    accounts = [a for pair in pairs for a in pair]
    assert len(set(accounts)) == len(accounts)
    normal = {a for r in records if r.kind == "normal" for a in r.value.decode().split(";")[1:3]}
    assert not normal & set(accounts)
    assert all(a.isdigit() for a in accounts)


@given(st.integers(min_value=2, max_value=10**6), st.integers(min_value=0, max_value=10**6))
def test_scenario_accounts_never_collide_with_the_pool(accounts: int, index: int) -> None:
    sender, receiver = scenario_accounts(index, accounts)
    assert sender != receiver
    assert len(sender) > len(str(accounts - 1))  # longer than any pool id
    assert scenario_accounts(index + 1, accounts)[0] not in (sender, receiver)


@given(
    st.integers(min_value=0, max_value=2**32),
    st.integers(min_value=5, max_value=20),
    st.data(),
)
def test_a_split_sums_to_its_total_in_allowed_pieces(
    seed: int, parts: int, data: st.DataObject
) -> None:
    unit = data.draw(st.sampled_from([1, 100]))
    high = parts * (MAX_TRANSFER_CENTS // unit)
    total = (
        data.draw(st.integers(min_value=parts * MIN_TRANSFER_CENTS // unit, max_value=high)) * unit
    )
    amounts = split_total(random.Random(seed), total, parts, unit=unit)
    assert sum(amounts) == total
    assert len(amounts) == parts
    assert all(MIN_TRANSFER_CENTS <= a <= MAX_TRANSFER_CENTS and a % unit == 0 for a in amounts)


def test_scenarios_every_injects_one_per_period_with_the_real_clock() -> None:
    ticks = itertools.count(1_700_000_000_000, 5)  # 200 records per second
    cfg = GeneratorConfig(clock="real", duration=100, scenarios_every=20, seed=2)
    records = list(generate(cfg, wall_ms=lambda: next(ticks)))
    truth = [e for e in ground_truth(records) if isinstance(e, ScenarioTruth)]
    first_three = ["structuring", "structuring", "near_miss"]
    assert [t.type for t in truth] == [*first_three, "structuring", "structuring"]
    starts = [t.first_event_ms for t in truth]
    assert [b - a for a, b in itertools.pairwise(starts)] == [20_000] * 4


def test_a_short_count_skips_scenarios_rather_than_cutting_them() -> None:
    records = list(generate(GeneratorConfig(count=30, scenarios=3, seed=1)))
    assert len(records) == 30
    truth = [e for e in ground_truth(records) if isinstance(e, ScenarioTruth)]
    assert all(t.complete for t in truth)
    assert len(truth) < 3


def test_the_ground_truth_file_is_json_lines_in_the_documented_shape(tmp_path: Path) -> None:
    records = list(generate(replace(CFG, count=5000, scenarios=3, malformed=0.02)))
    path = tmp_path / "truth.jsonl"
    written = write_ground_truth(path, records)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert written == len(lines)
    scenarios = [x for x in lines if x["type"] != "malformed"]
    malformed = [x for x in lines if x["type"] == "malformed"]
    assert len(scenarios) == 3
    for entry in scenarios:
        assert set(entry) >= {
            "type",
            "sender",
            "receiver",
            "first_event",
            "last_event",
            "total",
            "count",
        }
        assert entry["first_event"].endswith("Z") and len(entry["first_event"]) == 24
        assert parse_rfc3339(entry["first_event"]) <= parse_rfc3339(entry["last_event"])
        assert isinstance(entry["count"], int)
        assert Decimal(entry["total"]).as_tuple().exponent == -2
    bad = [r for r in records if r.kind == "malformed"]
    assert [base64.b64decode(x["value_b64"]) for x in malformed] == [r.value for r in bad]
    assert [x["reason"] for x in malformed] == [r.expected_reason for r in bad]


def test_ready_entries_can_be_written_too(tmp_path: Path) -> None:
    entry = MalformedTruth("not_utf8", b"\xff")
    path = tmp_path / "t.jsonl"
    assert write_ground_truth(path, [entry]) == 1
    assert json.loads(path.read_text()) == {
        "type": "malformed",
        "reason": "not_utf8",
        "value_b64": "/w==",
    }


@pytest.mark.parametrize("layout", ["rfc850", "rfc3339"])
def test_scenario_records_are_in_order_with_the_clock(layout: str) -> None:
    cfg = replace(CFG, layout=layout, count=8000, out_of_order=0.05)  # type: ignore[arg-type]
    latest = 0
    for record in generate(cfg):
        if record.scenario is not None:
            assert (record.event_time_ms or 0) >= latest
        if record.kind != "out_of_order" and record.event_time_ms is not None:
            latest = max(latest, record.event_time_ms)
