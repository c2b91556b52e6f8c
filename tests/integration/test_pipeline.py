"""End to end on the real broker: generator records in, a worker, alerts and dead letters out.

Expected results come from tests/reference.py over the records as they landed (partition,
offset), so they are exact: every window_closed alert_id with its total and count, every
threshold_crossed, every dead letter with its reason, nothing more. The main ones run under
both processing guarantees (under exactly-once, read read_committed, each alert once).
"""

from __future__ import annotations

from dataclasses import replace

from generator import GeneratorConfig, generate
from tests.integration.kafka_io import alerts_by_kind, decoded, produce, read_until
from tests.integration.pipeline import (
    TIMEOUT,
    Pipeline,
    assert_alerts,
    both_guarantees,
    dead_letters,
    expect,
    expect_in_order,
)

BASE = GeneratorConfig(
    count=4000,
    accounts=40,
    seed=11,
    layout="rfc850",
    mean_gap_ms=400,
    scenarios=10,
    malformed=0.02,
    out_of_order=0.01,
    out_of_order_max_ms=900_000,
)


@both_guarantees
async def test_alerts_and_dead_letters_are_exactly_the_expected_ones(
    pipeline: Pipeline, guarantee: str
) -> None:
    written = await pipeline.under(guarantee).send(BASE)
    expected = expect(written)
    reasons = set(expected.dead.values())
    assert len(expected.closed) >= 10
    assert {"late", "field_count", "bad_timestamp", "bad_amount"} <= reasons
    worker = pipeline.worker()
    fraud, dlq = await pipeline.wait_for(expected)
    assert_alerts(fraud, expected)
    assert dead_letters(dlq) == expected.dead
    assert "+uvloop" in worker.log_text()  # the banner names the event loop
    assert worker.get("/health") == (200, {"status": "ok"})
    assert worker.get("/ready") == (200, {"ready": True})
    metrics = worker.metrics()
    late = sum(1 for reason in expected.dead.values() if reason == "late")
    assert metrics['fraud_dead_letters_total{reason="late"}'] == late
    assert metrics['fraud_alerts_total{kind="window_closed"}'] == len(expected.closed)
    assert metrics["fraud_assigned_partitions"] == 8
    assert metrics["fraud_processing_latency_seconds_count"] == len(written)
    worker.wait_until(  # every input record processed: no lag on any partition
        lambda: all(
            value == 0
            for name, value in worker.metrics().items()
            if name.startswith("fraud_consumer_lag{")
        ),
        "lag 0",
        TIMEOUT,
    )
    some_pair = next(iter(expected.closed)).rsplit(":", 1)[0]
    assert worker.get(f"/pair/{some_pair}") == (200, {"pair": some_pair, "windows": []})
    # every injected structuring burst is caught; no near miss is
    scenario_pairs = {(r.scenario.type, r.key) for r in generate(BASE) if r.scenario is not None}
    alerted_pairs = {f"{a['sender']}:{a['receiver']}".encode() for a in decoded(fraud)}
    for kind, pair in scenario_pairs:
        assert (pair in alerted_pairs) == (kind == "structuring"), (kind, pair)


@both_guarantees
async def test_unkeyed_input_gives_the_same_alerts(pipeline: Pipeline, guarantee: str) -> None:
    in_order = replace(BASE, out_of_order=0.0, layout="rfc3339", keyed=False)
    written = await pipeline.under(guarantee).send(in_order)
    assert all(w.key is None for w in written)
    expected = expect_in_order(written)
    pipeline.worker()
    fraud, dlq = await pipeline.wait_for(expected)
    # re-keyed, a pair's events from different input partitions interleave in another order,
    # so the running total at which a window crosses may differ; its final total may not
    assert_alerts(fraud, expected, crossing_order=False)
    assert sorted(dead_letters(dlq).values()) == sorted(expected.dead.values())


@both_guarantees
async def test_a_killed_worker_restarted_mid_stream_completes_the_set(
    pipeline: Pipeline, guarantee: str
) -> None:
    pipeline.under(guarantee)
    cfg = replace(BASE, seed=12, count=6000)
    records = list(generate(cfg))
    half = len(records) // 2
    topic = pipeline.topics["transactions"]
    first = await produce(pipeline.bootstrap, topic, ((r.key, r.value) for r in records[:half]))
    worker = pipeline.worker()
    first_expected = expect(first)
    await read_until(
        pipeline.bootstrap,
        pipeline.topics["fraud"],
        lambda rs: len(alerts_by_kind(rs, "window_closed")) >= len(first_expected.closed) // 2,
        timeout=TIMEOUT,
        what="alerts before the kill",
    )
    worker.kill()
    second = await produce(pipeline.bootstrap, topic, ((r.key, r.value) for r in records[half:]))
    second += await pipeline.close_windows(first + second)
    expected = expect(first + second)
    mark = len(worker.log_text())
    pipeline.worker()  # same ordinal: same data dir, as a restarted pod
    fraud, dlq = await pipeline.wait_for(expected)
    assert_alerts(fraud, expected)  # also: no alert_id with two different contents
    assert dead_letters(dlq) == expected.dead
    # the local tables of a killed worker are no consistent state: rebuilt from the changelog
    assert "local table state discarded" in worker.log_text()[mark:]


def test_a_missing_output_topic_stops_the_worker_with_one_line(pipeline: Pipeline) -> None:
    # without the check, every alert would wait on the broker's metadata for ever
    absent = pipeline.topics["fraud"] + "-absent"
    pipeline.env["FRAUD_TOPIC"] = absent
    worker = pipeline.worker(0)
    assert worker.process is not None
    code = worker.process.wait(timeout=TIMEOUT)
    log = worker.log_text()
    assert code == 2, log[-2000:]
    assert f"fraud-detector: topics {absent} do not exist" in log
    assert "Traceback" not in log
