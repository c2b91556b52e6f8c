"""End to end on the real broker: generator records in, a worker process, alerts and dead letters out.

Expected results come from tests/reference.py over the records as they landed (partition,
offset), so they are exact: every window_closed alert_id with its total and count, every
threshold_crossed, every dead letter with its reason, nothing more.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from generator import GeneratorConfig, generate
from localkafka import LocalKafka, free_ports
from tests.conftest import TopicFactory
from tests.integration.kafka_io import Written, alerts_by_kind, decoded, produce, read_until
from tests.integration.workers import WorkerProcess
from tests.reference import Expected, expected_alerts

TIMEOUT = 240.0
BASE = GeneratorConfig(
    count=4000, accounts=40, seed=11, layout="rfc850", mean_gap_ms=400, scenarios=10,
    malformed=0.02, out_of_order=0.01, out_of_order_max_ms=900_000,
)  # fmt: skip


class Pipeline:
    """One isolated pipeline: its own topics, app id and workers on the session broker."""

    def __init__(self, kafka: LocalKafka, topics: TopicFactory, root: Path) -> None:
        self.bootstrap = kafka.bootstrap
        self.topics = topics.create(partitions=8)
        self.root = root
        self.env = {
            "KAFKA_BOOTSTRAP": kafka.bootstrap,
            "APP_ID": f"fraud-{uuid.uuid4().hex[:8]}",
            "TRANSACTIONS_TOPIC": self.topics["transactions"],
            "FRAUD_TOPIC": self.topics["fraud"],
            "DLQ_TOPIC": self.topics["dlq"],
            "TOPIC_PARTITIONS": "8",
            "IDLE_TIMEOUT": "3",
            "MAX_EVIDENCE": "20",
        }
        self.workers: list[WorkerProcess] = []

    def worker(self, ordinal: int = 0) -> WorkerProcess:
        existing = [w for w in self.workers if w.name == f"fraud-worker-{ordinal}"]
        if existing:
            return existing[0].start()
        worker = WorkerProcess(ordinal, self.env, self.root, free_ports(1)[0]).start()
        self.workers.append(worker)
        return worker

    async def send(self, cfg: GeneratorConfig) -> list[Written]:
        records = list(generate(cfg))
        return await produce(
            self.bootstrap, self.topics["transactions"], ((r.key, r.value) for r in records)
        )

    async def wait_for(self, expected: Expected) -> tuple[list[Written], list[Written]]:
        def complete(records: list[Written]) -> bool:
            closed = alerts_by_kind(records, "window_closed")
            return set(expected.closed) <= set(closed)

        try:
            fraud = await read_until(
                self.bootstrap, self.topics["fraud"], complete, timeout=TIMEOUT,
                what=f"{len(expected.closed)} window_closed alerts",
            )  # fmt: skip
            dlq = await read_until(
                self.bootstrap, self.topics["dlq"],
                lambda records: len({(r.partition, r.offset) for r in records})
                >= len(expected.dead),
                timeout=TIMEOUT, what=f"{len(expected.dead)} dead letters",
            )  # fmt: skip
        except AssertionError as error:
            logs = "\n".join(w.log_text()[-2000:] for w in self.workers)
            raise AssertionError(f"{error}\nworker logs:\n{logs}") from None
        return fraud, dlq

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def pipeline(kafka: LocalKafka, topics: TopicFactory, tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(kafka, topics, tmp_path)
    try:
        yield pipe
    finally:
        pipe.stop()


def expect(written: list[Written]) -> Expected:
    in_log_order = sorted(written, key=lambda w: (w.partition, w.offset))
    return expected_alerts((w.partition, w.offset, w.value) for w in in_log_order)


def assert_alerts(fraud: list[Written], expected: Expected, *, crossing_order: bool = True) -> None:
    """Window_closed alerts exactly; threshold_crossed alerts for the same windows, and, when the
    pair's events arrive in the order the reference saw them, at the same running total."""
    closed = alerts_by_kind(fraud, "window_closed")
    crossed = alerts_by_kind(fraud, "threshold_crossed")
    got_closed = {i: (cents(a["total"]), a["count"]) for i, a in closed.items()}
    got_crossed = {i: (cents(a["total"]), a["count"]) for i, a in crossed.items()}
    assert got_closed == expected.closed
    assert set(got_crossed) == set(expected.crossed)
    if crossing_order:
        assert got_crossed == expected.crossed


def dead_letters(dlq: list[Written]) -> dict[tuple[int, int], str]:
    return {(d["partition"], d["offset"]): d["reason"] for d in decoded(dlq)}


def cents(total: str) -> int:
    dollars, _, part = total.partition(".")
    return int(dollars) * 100 + int(part)


async def test_alerts_and_dead_letters_are_exactly_the_expected_ones(pipeline: Pipeline) -> None:
    written = await pipeline.send(BASE)
    expected = expect(written)
    reasons = set(expected.dead.values())
    assert len(expected.closed) >= 10
    assert {"late", "field_count", "bad_timestamp", "bad_amount"} <= reasons
    worker = pipeline.worker()
    fraud, dlq = await pipeline.wait_for(expected)
    assert_alerts(fraud, expected)
    assert dead_letters(dlq) == expected.dead
    assert "+uvloop" in worker.log_text()  # the banner names the event loop
    # every injected structuring burst is caught; no near miss is
    scenario_pairs = {
        (r.scenario.type, r.key) for r in generate(BASE) if r.scenario is not None
    }  # fmt: skip
    alerted_pairs = {f"{a['sender']}:{a['receiver']}".encode() for a in decoded(fraud)}
    for kind, pair in scenario_pairs:
        assert (pair in alerted_pairs) == (kind == "structuring"), (kind, pair)


async def test_unkeyed_input_gives_the_same_alerts(pipeline: Pipeline) -> None:
    in_order = replace(BASE, out_of_order=0.0, layout="rfc3339")
    expected = expect(await produce_nowhere(in_order))
    written = await pipeline.send(replace(in_order, keyed=False))
    assert all(w.key is None for w in written)
    pipeline.worker()
    fraud, dlq = await pipeline.wait_for(expected)
    # re-keyed, a pair's events from different input partitions interleave in another order,
    # so the running total at which a window crosses may differ; its final total may not
    assert_alerts(fraud, expected, crossing_order=False)
    assert sorted(dead_letters(dlq).values()) == sorted(expected.dead.values())


async def produce_nowhere(cfg: GeneratorConfig) -> list[Written]:
    """The stream as one in-order log: with no out-of-order records, where each record lands
    does not change the alerts, so this is the expectation for any partitioning."""
    return [Written(0, i, r.key, r.value) for i, r in enumerate(generate(cfg))]


async def test_a_killed_worker_restarted_mid_stream_completes_the_set(pipeline: Pipeline) -> None:
    cfg = replace(BASE, seed=12, count=6000)
    records = list(generate(cfg))
    half = len(records) // 2
    topic = pipeline.topics["transactions"]
    first = await produce(pipeline.bootstrap, topic, ((r.key, r.value) for r in records[:half]))
    worker = pipeline.worker()
    first_expected = expect(first)
    await read_until(
        pipeline.bootstrap, pipeline.topics["fraud"],
        lambda rs: len(alerts_by_kind(rs, "window_closed")) >= len(first_expected.closed) // 2,
        timeout=TIMEOUT, what="alerts before the kill",
    )  # fmt: skip
    worker.kill()
    second = await produce(pipeline.bootstrap, topic, ((r.key, r.value) for r in records[half:]))
    expected = expect(first + second)
    pipeline.worker()  # same ordinal: same data dir, as a restarted pod
    fraud, dlq = await pipeline.wait_for(expected)
    assert_alerts(fraud, expected)  # also: no alert_id with two different contents
    assert dead_letters(dlq) == expected.dead
