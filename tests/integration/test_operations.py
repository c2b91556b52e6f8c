"""What operators use, on the real broker: pair and top queries from the live cluster, the
offline dump of a stopped worker's state, and the threshold changed while workers run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from generator import GeneratorConfig, generate
from tests.integration.kafka_io import alerts_by_kind, produce, read_until
from tests.integration.pipeline import TIMEOUT, Pipeline
from tests.integration.workers import REPO, WorkerProcess

STREAM = GeneratorConfig(count=3000, accounts=40, seed=41, mean_gap_ms=100, scenarios=4)


def faust(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "faust"), "-A", "app", *args],
        cwd=REPO,
        env={**os.environ, **pipeline.env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def faust_json(pipeline: Pipeline, *args: str) -> Any:
    result = faust(pipeline, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def url(worker: WorkerProcess) -> str:
    return f"http://127.0.0.1:{worker.web_port}"


async def test_pair_top_and_dump_store(pipeline: Pipeline) -> None:
    # no closing transactions and IDLE_TIMEOUT=0: the last windows stay open to be inspected
    workers = [pipeline.worker(i) for i in range(2)]
    for worker in workers:  # both in the group before any input: each gets partitions to work
        worker.wait_ready(timeout=TIMEOUT)
    records = [(r.key, r.value) for r in generate(STREAM)]
    written = await produce(pipeline.bootstrap, pipeline.topics["transactions"], records)
    for worker in workers:
        worker.wait_metric("fraud_records_received_total", above=0, timeout=TIMEOUT)
    total = len(written)

    def processed() -> float:
        return sum(w.metric("fraud_records_received_total") for w in workers)

    workers[0].wait_until(lambda: processed() >= total, f"{total} records processed", TIMEOUT)

    top = faust_json(pipeline, "top", "--n", "5", "--url", url(workers[0]))
    assert 1 <= len(top) <= 5
    totals = [int(row["total_cents"]) for row in top]
    assert totals == sorted(totals, reverse=True)
    sender, receiver = top[0]["pair"].split(":")
    # the same pair from both workers: one of them routes the query to the owner
    reports = [faust_json(pipeline, "pair", sender, receiver, "--url", url(w)) for w in workers]
    assert reports[0] == reports[1]
    assert max(int(w["total"].replace(".", "")) for w in reports[0]["windows"]) == totals[0]
    plain = faust(pipeline, "pair", sender, receiver, "--url", url(workers[1]))
    assert plain.returncode == 0 and f"{sender} -> {receiver}" in plain.stdout

    for worker in workers:
        worker.stop()
    dumped = [
        json.loads(line)
        for worker in workers
        for line in faust(
            pipeline, "dump-store", "--data-dir", str(worker.data_dir), "--json"
        ).stdout.splitlines()
    ]
    pairs = {row["pair"]: row for row in dumped if row["kind"] == "pair"}
    assert pairs[top[0]["pair"]]["windows"] == [
        {k: w[k] for k in ("window_start", "total", "count")} for w in reports[0]["windows"]
    ]
    clocks = [row for row in dumped if row["kind"] == "clock"]
    assert {row["partition"] for row in clocks} == set(range(8))
    assert any(row["closed"].get("keyed") for row in clocks)  # the input is keyed by pair
    text = faust(pipeline, "dump-store", "--data-dir", str(workers[0].data_dir))
    assert text.returncode == 0, text.stderr
    assert re.search(r"^partition \d: closed up to keyed \d{4}-", text.stdout, re.MULTILINE)


async def test_the_threshold_changes_while_the_workers_run(pipeline: Pipeline) -> None:
    early = faust(pipeline, "set-threshold", "500")  # no worker has created the control topic
    assert early.returncode != 0
    assert "control topic" in early.stderr and "start one first" in early.stderr
    assert "Traceback" not in early.stderr
    worker = pipeline.worker(0)
    worker.wait_ready(timeout=TIMEOUT)
    result = faust(pipeline, "set-threshold", "500")
    assert result.returncode == 0, result.stderr
    assert "500.00" in result.stdout
    cfg = replace(STREAM, scenarios=0, count=2000)
    await pipeline.send(cfg)
    fraud = await read_until(
        pipeline.bootstrap, pipeline.topics["fraud"],
        lambda rs: len(alerts_by_kind(rs, "window_closed")) >= 10,
        timeout=TIMEOUT, what="alerts at the new threshold",
    )  # fmt: skip
    alerts = alerts_by_kind(fraud, "window_closed").values()
    assert {a["threshold"] for a in alerts} == {"500.00"}
    assert all(int(a["total"].replace(".", "")) > 500_00 for a in alerts)
    assert faust(pipeline, "set-threshold", "ten").returncode != 0
