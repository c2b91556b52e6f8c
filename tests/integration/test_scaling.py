"""Scaling on the real broker: workers as the StatefulSet runs them (ordinal names, own data
dir and web port), added and removed while transactions flow."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from generator import GeneratorConfig, generate
from tests.integration.kafka_io import produce
from tests.integration.pipeline import TIMEOUT, Pipeline, assert_alerts, dead_letters, expect

REPORT = Path(__file__).resolve().parents[2] / ".run" / "recovery-report.json"
STREAM = GeneratorConfig(
    count=9000,
    accounts=60,
    seed=21,
    layout="rfc3339",
    mean_gap_ms=300,
    scenarios=15,
    malformed=0.01,
    out_of_order=0.01,
    out_of_order_max_ms=900_000,
)


async def test_scaling_1_to_3_to_1_loses_and_changes_nothing(pipeline: Pipeline) -> None:
    records = [(r.key, r.value) for r in generate(STREAM)]
    thirds = [records[: len(records) // 3], records[len(records) // 3 : 2 * len(records) // 3]]
    thirds.append(records[2 * len(records) // 3 :])
    topic = pipeline.topics["transactions"]
    written = await produce(pipeline.bootstrap, topic, thirds[0])
    pipeline.worker(0).wait_ready(timeout=TIMEOUT)
    scale_out = time.monotonic()
    added = [pipeline.worker(1), pipeline.worker(2)]
    for worker in pipeline.workers:
        worker.wait_ready(timeout=TIMEOUT)
    scale_out = time.monotonic() - scale_out
    written += await produce(pipeline.bootstrap, topic, thirds[1])
    for worker in added:  # the new workers did take over partitions
        worker.wait_metric("fraud_records_received_total", above=0, timeout=120)
    scale_in = time.monotonic()
    for worker in added:
        worker.stop()
    pipeline.workers[0].wait_metric("fraud_assigned_partitions", above=7, timeout=TIMEOUT)
    scale_in = time.monotonic() - scale_in
    written += await produce(pipeline.bootstrap, topic, thirds[2])
    written += await pipeline.close_windows(written)
    expected = expect(written)
    fraud, dlq = await pipeline.wait_for(expected)
    assert_alerts(fraud, expected)  # equal to the single-worker semantics; one content per id
    assert dead_letters(dlq) == expected.dead
    REPORT.parent.mkdir(exist_ok=True)
    with (REPORT.parent / "scaling-report.jsonl").open("a") as out:
        row = {
            "events": len(written),
            "1->3 ready_s": round(scale_out, 1),
            "3->1 ready_s": round(scale_in, 1),
        }
        out.write(json.dumps(row) + "\n")


async def test_any_worker_answers_a_pair_query_for_the_owner(pipeline: Pipeline) -> None:
    # IDLE_TIMEOUT is 0 in the tests' pipelines: the windows stay open to be looked at
    cfg = replace(STREAM, count=400, scenarios=2, malformed=0.0, out_of_order=0.0)
    written = await produce(
        pipeline.bootstrap,
        pipeline.topics["transactions"],
        [(r.key, r.value) for r in generate(cfg)],
    )
    workers = [pipeline.worker(i) for i in range(3)]
    last = max(written, key=lambda w: w.offset)  # a pair with recent (open) windows
    pair = last.key.decode() if last.key else ""
    deadline = time.monotonic() + 120
    answers: list[object] = []
    while time.monotonic() < deadline:
        answers = [w.get_or_none(f"/pair/{pair}") for w in workers]
        first = answers[0]
        if (
            first is not None
            and first[0] == 200
            and first[1]["windows"]
            and all(a == first for a in answers)
        ):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"workers did not agree on {pair}: {answers}")
    _, report = answers[0]  # type: ignore[misc]
    assert report["pair"] == pair
    assert all(w["count"] >= 1 for w in report["windows"])


async def test_a_restart_with_its_data_dir_replays_no_changelog(pipeline: Pipeline) -> None:
    # open state for many pairs (no closing transactions, IDLE_TIMEOUT=0): a changelog to replay
    cfg = replace(STREAM, count=20_000, accounts=2_000, scenarios=0, malformed=0.0)
    written = await produce(
        pipeline.bootstrap,
        pipeline.topics["transactions"],
        [(r.key, r.value) for r in generate(cfg)],
    )
    worker = pipeline.worker(0)
    worker.wait_ready(timeout=TIMEOUT)
    worker.wait_metric("fraud_records_received_total", above=len(written) - 1, timeout=TIMEOUT)
    worker.stop()
    mark = len(worker.log_text())
    with_dir = worker.restart_timed(TIMEOUT)
    replayed_with_dir = worker.replayed_changelog(since=mark)
    worker.stop()
    shutil.rmtree(worker.data_dir)  # a new volume
    mark = len(worker.log_text())
    without_dir = worker.restart_timed(TIMEOUT)
    replayed_without_dir = worker.replayed_changelog(since=mark)
    assert replayed_with_dir == 0
    assert "local table state discarded" not in worker.log_text()  # both stops were clean
    assert replayed_without_dir >= 1000  # at least one changelog record per open pair's write
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "events": len(written),
                "ready_s_with_data_dir": round(with_dir, 1),
                "replayed_with_data_dir": replayed_with_dir,
                "ready_s_without_data_dir": round(without_dir, 1),
                "replayed_without_data_dir": replayed_without_dir,
            }
        )
        + "\n"
    )
