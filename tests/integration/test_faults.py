"""Faults on the real broker: nothing lost, nothing counted twice, every offset committed.

Each scenario sends 20,000 seeded transactions in chunks and injects its fault between chunks,
while the workers are busy; the expected alerts come from tests/reference.py. Pass = no missing
and no unexpected window_closed alert, every repeated alert_id with the same content, the input
fully committed by the group. Figures (faults, duplicates, recovery seconds) are appended to
.run/fault-report.jsonl for the record.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from localkafka import LocalKafka, free_ports

from generator import GeneratorConfig, generate
from tests.conftest import TopicFactory
from tests.integration.kafka_io import Written, produce, read_until, wait_committed
from tests.integration.pipeline import TIMEOUT, Pipeline, assert_alerts, expect

REPORT = Path(__file__).resolve().parents[2] / ".run" / "fault-report.jsonl"
STREAM = GeneratorConfig(
    count=20_000, accounts=300, seed=31, layout="rfc850", mean_gap_ms=150, scenarios=40,
    malformed=0.01, out_of_order=0.005, out_of_order_max_ms=900_000,
)  # fmt: skip


def chunks(parts: int) -> list[list[tuple[bytes | None, bytes]]]:
    records = [(r.key, r.value) for r in generate(STREAM)]
    size = -(-len(records) // parts)
    return [records[i : i + size] for i in range(0, len(records), size)]


def duplicates(fraud: list[Written]) -> int:
    seen = Counter((w.key, json.loads(w.value or b"{}").get("kind")) for w in fraud)
    return sum(n - 1 for n in seen.values())


def report(scenario: str, faults: int, fraud: list[Written], recovery_s: list[float]) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    with REPORT.open("a") as out:
        row = {
            "scenario": scenario,
            "events": STREAM.count,
            "faults": faults,
            "missing": 0,  # asserted
            "duplicates": duplicates(fraud),
            "recovery_s": [round(s, 1) for s in recovery_s],
        }
        out.write(json.dumps(row) + "\n")


async def finish(pipeline: Pipeline, written: list[Written]) -> list[Written]:
    written += await pipeline.close_windows(written)
    expected = expect(written)
    fraud, _ = await pipeline.wait_for(expected)
    assert_alerts(fraud, expected)
    await wait_committed(
        pipeline.bootstrap, pipeline.env["APP_ID"], pipeline.topics["transactions"], TIMEOUT
    )
    return fraud


async def kill_three_times(pipeline: Pipeline) -> tuple[list[Written], list[float]]:
    workers = [pipeline.worker(i) for i in range(3)]
    for worker in workers:
        worker.wait_ready(timeout=TIMEOUT)
    written: list[Written] = []
    recovery = []
    topic = pipeline.topics["transactions"]
    parts = chunks(4)
    for round_, part in enumerate(parts):
        written += await produce(pipeline.bootstrap, topic, part)
        if round_ < 3:
            victim = workers[round_]
            before = victim.metric("fraud_records_received_total")
            victim.wait_metric("fraud_records_received_total", above=before, timeout=TIMEOUT)
            victim.kill()  # mid-chunk: no shutdown, no flush, no commit
            recovery.append(victim.restart_timed(TIMEOUT))
    return await finish(pipeline, written), recovery


# Expected failures: both scenarios hit Faust's rebalance defects now and then (a worker that stops
# fetching after a rebalance, offsets jumped; see docs/semantics.md). They run in every `make test`
# and report XFAIL or XPASS.
FAUST_REBALANCE_DEFECTS = pytest.mark.xfail(
    strict=False,
    reason="Faust's consumer can stop fetching or jump offsets after a rebalance "
    "(docs/semantics.md, Faust defects that break the guarantee)",
)


@FAUST_REBALANCE_DEFECTS
async def test_kill_9_three_times_with_3_workers(pipeline: Pipeline) -> None:
    fraud, recovery = await kill_three_times(pipeline)
    report("kill -9 x3, 3 workers", 3, fraud, recovery)


async def test_broker_restart_mid_run(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path / "kafka", *free_ports(2))
    broker.start()
    pipeline = Pipeline(broker, TopicFactory(broker.bootstrap), tmp_path)
    try:
        workers = [pipeline.worker(i) for i in range(2)]
        for worker in workers:
            worker.wait_ready(timeout=TIMEOUT)
        parts = chunks(3)
        topic = pipeline.topics["transactions"]
        written = await produce(pipeline.bootstrap, topic, parts[0])
        workers[0].wait_metric("fraud_records_received_total", above=0, timeout=TIMEOUT)
        broker.stop()
        down = time.monotonic()
        broker.start()
        outage = time.monotonic() - down
        written += await produce(pipeline.bootstrap, topic, parts[1])
        written += await produce(pipeline.bootstrap, topic, parts[2])
        started = time.monotonic()
        fraud = await finish(pipeline, written)
        assert all(w.alive() for w in workers), "a worker died instead of reconnecting"
        report(f"broker restart ({outage:.0f}s down)", 1, fraud, [time.monotonic() - started])
    finally:
        pipeline.stop()
        broker.stop()


@FAUST_REBALANCE_DEFECTS  # and a resumed worker's changelog records that were waiting to be sent
async def test_a_frozen_worker_emits_nothing_stale(pipeline: Pipeline) -> None:
    pipeline.env["KAFKA_SESSION_TIMEOUT"] = "8"
    workers = [pipeline.worker(i) for i in range(2)]
    for worker in workers:
        worker.wait_ready(timeout=TIMEOUT)
    parts = chunks(3)
    topic = pipeline.topics["transactions"]
    written = await produce(pipeline.bootstrap, topic, parts[0])
    frozen, other = workers[1], workers[0]
    frozen.wait_metric("fraud_records_received_total", above=0, timeout=TIMEOUT)
    assert frozen.process is not None
    frozen.process.send_signal(signal.SIGSTOP)
    try:
        # the other worker takes over every partition and processes what comes next
        written += await produce(pipeline.bootstrap, topic, parts[1])
        expected_so_far = expect(written)
        await read_until(
            pipeline.bootstrap, pipeline.topics["fraud"],
            lambda rs: len({r.key for r in rs}) >= len(expected_so_far.closed) // 2,
            timeout=TIMEOUT, what="alerts while a worker is frozen",
        )  # fmt: skip
    finally:
        frozen.process.send_signal(signal.SIGCONT)
    written += await produce(pipeline.bootstrap, topic, parts[2])
    fraud = await finish(pipeline, written)
    assert other.alive() and frozen.alive()
    report("SIGSTOP > session timeout", 1, fraud, [])


async def test_a_lost_data_dir_is_rebuilt_from_the_changelog(pipeline: Pipeline) -> None:
    worker = pipeline.worker(0)
    worker.wait_ready(timeout=TIMEOUT)
    parts = chunks(2)
    topic = pipeline.topics["transactions"]
    written = await produce(pipeline.bootstrap, topic, parts[0])
    worker.wait_metric("fraud_records_received_total", above=len(parts[0]) - 1, timeout=TIMEOUT)
    worker.stop()
    shutil.rmtree(worker.data_dir)  # a lost volume
    recovery = worker.restart_timed(TIMEOUT)
    written += await produce(pipeline.bootstrap, topic, parts[1])
    fraud = await finish(pipeline, written)
    report("data dir deleted", 1, fraud, [recovery])
