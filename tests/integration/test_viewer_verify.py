"""fraud-verify and the viewer's cases on a real worker's alerts, on the real broker.

The generator's records and ground truth, plus two bursts written here that no aligned
10-minute window holds whole (the generator keeps its bursts under 4 minutes, so it never makes
one): one spread too thin to cross the threshold in any window, one large enough to alert
anyway. The worker processes everything; the test waits for the exact set of closed windows
(tests/reference.py), then runs ``python -m viewer.verify`` and ``python -m viewer``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from generator import GeneratorConfig, generate, write_ground_truth
from generator.formats import format_rfc3339, format_rfc3339_ms, parse_rfc3339
from tests.integration.kafka_io import produce
from tests.integration.pipeline import Pipeline, expect

ROOT = Path(__file__).resolve().parents[2]
START_MS = 1_500_768_000_000  # the generator's default start: 2017-07-23T00:00:00Z
MINUTE_MS = 60_000

CONFIG = GeneratorConfig(
    count=3000, accounts=40, seed=21, layout="rfc3339", mean_gap_ms=400, scenarios=9
)

Line = tuple[bytes, bytes, int]
"""(key, value, event time ms) of one transaction."""


def spread(
    sender: str, receiver: str, first_ms: int, span_ms: int, amounts: list[int]
) -> list[Line]:
    """Transfers of whole ``amounts`` (dollars) at even steps over ``span_ms``."""
    times = [first_ms + span_ms * i // (len(amounts) - 1) for i in range(len(amounts))]
    return [
        (
            f"{sender}:{receiver}".encode(),
            f"{format_rfc3339(time)};{sender};{receiver};{amount}".encode(),
            time,
        )
        for time, amount in zip(times, amounts, strict=True)
    ]


def truth_entry(lines: list[Line], sender: str, receiver: str, total: int) -> str:
    times = [time for _, _, time in lines]
    return orjson.dumps(
        {
            "type": "structuring",
            "sender": sender,
            "receiver": receiver,
            "first_event": format_rfc3339_ms(min(times)),
            "last_event": format_rfc3339_ms(max(times)),
            "total": f"{total}.00",
            "count": len(lines),
            "complete": True,
        }
    ).decode()


# One minute past a slide boundary (00:04): the window starting then ends 9 minutes into the
# burst, the next one (00:06) starts after its first transfer.
FIRST_MS = START_MS + 5 * MINUTE_MS
# $10,500 over 9.5 minutes in 10 transfers: any window holds at most 9 of them ($9,450).
THIN = spread("80000", "80001", FIRST_MS, 570_000, [1050] * 10)
# $30,000 over 11 minutes: no window holds it all, but every one holds more than $10,000.
WIDE = spread("80002", "80003", FIRST_MS, 660_000, [2500] * 12)


def closing(event_ms: int) -> list[Line]:
    """$1 transfers of 64 pairs at ``event_ms``: on every input partition, they move the
    watermark past the end of every window of the run, which then closes at once (an idle
    partition's watermark would only move at wall-clock speed)."""
    return [
        (
            f"70000:{70001 + n}".encode(),
            f"{format_rfc3339(event_ms)};70000;{70001 + n};1".encode(),
            event_ms,
        )
        for n in range(64)
    ]


async def run(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_verify_scores_the_worker_and_the_viewer_groups_its_cases(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    records = list(generate(CONFIG))
    truth = tmp_path / "truth.jsonl"
    write_ground_truth(truth, records)
    with truth.open("a", encoding="utf-8") as out:
        out.write(truth_entry(THIN, "80000", "80001", 10_500) + "\n")
        out.write(truth_entry(WIDE, "80002", "80003", 30_000) + "\n")
    lines: list[Line] = (
        [(r.key or b"", r.value, r.event_time_ms or 0) for r in records] + THIN + WIDE
    )
    lines.sort(key=lambda line: line[2])  # in event time: nothing is late
    lines += closing(lines[-1][2] + 11 * MINUTE_MS)
    written = await produce(
        pipeline.bootstrap, pipeline.topics["transactions"], ((k, v) for k, v, _ in lines)
    )
    assert {w.partition for w in written[-64:]} == set(range(8))
    expected = expect(written)
    pipeline.worker()
    await pipeline.wait_for(expected)
    kafka = ["--bootstrap", pipeline.bootstrap, "--topic", pipeline.topics["fraud"]]
    kafka += ["--transactions-topic", pipeline.topics["transactions"]]

    code, out, err = await run("-m", "viewer.verify", str(truth), *kafka, "--json")

    assert (code, err) == (0, ""), out
    report: dict[str, Any] = orjson.loads(out)
    structuring, near_miss = report["types"]["structuring"], report["types"]["near_miss"]
    assert (structuring["scenarios"], structuring["scored"], structuring["alerted"]) == (8, 6, 6)
    assert structuring["recall"] == 1.0
    assert (structuring["missable_by_design"], structuring["missable_alerted"]) == (2, 1)
    assert (near_miss["scenarios"], near_miss["alerted"]) == (3, 0)
    by_pair = {(s["sender"], s["receiver"]): s for s in report["scenarios"]}
    assert by_pair[("80000", "80001")]["fits_window"] is False
    assert by_pair[("80000", "80001")]["alerted"] is False
    assert by_pair[("80002", "80003")]["alerted"] is True
    # Every alert of the reference on a pair without a scenario is an unexplained case.
    scenario_pairs = {f"{s}:{r}" for s, r in by_pair}
    other_pairs = {i.rsplit(":", 1)[0] for i in expected.closed} - scenario_pairs
    assert {i.rsplit(":", 1)[0] for i in report["unexplained_cases"]} == other_pairs
    assert report["precision"] == report["true_cases"] / report["cases"]
    for scenario in report["scenarios"]:
        if scenario["scored"] and scenario["type"] == "structuring":
            span_s = (scenario_span_ms(scenario)) / 1000
            assert 0 <= scenario["crossing_after_s"] <= span_s
            assert scenario["processing_s"] is not None and scenario["processing_s"] >= 0

    code, out, err = await run("-m", "viewer.verify", str(truth), *kafka)

    assert code == 0, err
    assert out.splitlines()[-1] == (
        "PASS: 6 of 6 structuring scenarios detected, 0 of 3 near misses alerted"
    )
    assert "structuring 80000 -> 80001  2017-07-23 00:05:00–00:14:30 (9m30s)" in out

    # The viewer's cases on the worker's records: each injected burst is one case, confirmed,
    # holding all of its pair's closed windows, with the largest window total as its total.
    code, out, err = await run(
        "-m", "viewer", *kafka[:4], "--from-beginning", "--json", "--timeout", "15"
    )

    assert code == 0, err
    assert all(not orjson.loads(line)["replaces"] for line in out.splitlines())  # settled
    last: dict[str, dict[str, Any]] = {}
    for line in out.splitlines():
        case = orjson.loads(line)
        for old in case["replaces"]:
            last.pop(old, None)
        last[case["case_id"]] = case
    cases: dict[str, list[dict[str, Any]]] = {}
    for case in last.values():
        cases.setdefault(f"{case['sender']}:{case['receiver']}", []).append(case)
    windows = Counter(alert_id.rsplit(":", 1)[0] for alert_id in expected.closed)
    assert {pair: sum(c["windows"] for c in found) for pair, found in cases.items()} == windows
    assert all(case["status"] == "confirmed" for case in last.values())
    for pair in scenario_pairs & set(windows):
        (case,) = cases[pair]
        assert case["total"] == max(dollars(expected.closed[i][0]) for i in case["alert_ids"])


def scenario_span_ms(scenario: dict[str, Any]) -> int:
    return parse_rfc3339(scenario["last_event"]) - parse_rfc3339(scenario["first_event"])


def dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"
