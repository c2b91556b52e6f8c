"""A pipeline under test on the real broker: its own topics, app id and worker processes.

Shared by the integration tests: send generator records, start/kill workers, wait with a
deadline for the expected alerts, and compare them with tests/reference.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from localkafka import LocalKafka, free_ports

from generator import GeneratorConfig, generate
from tests.conftest import TopicFactory
from tests.integration.kafka_io import Written, alerts_by_kind, decoded, produce, read_until
from tests.integration.workers import WorkerProcess
from tests.reference import Expected, expected_alerts

TIMEOUT = 240.0


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
                self.bootstrap,
                self.topics["fraud"],
                complete,
                timeout=TIMEOUT,
                what=f"{len(expected.closed)} window_closed alerts",
            )
            dlq = await read_until(
                self.bootstrap,
                self.topics["dlq"],
                lambda records: (
                    len({(r.partition, r.offset) for r in records}) >= len(expected.dead)
                ),
                timeout=TIMEOUT,
                what=f"{len(expected.dead)} dead letters",
            )
        except AssertionError as error:
            logs = "\n".join(w.log_text()[-2000:] for w in self.workers)
            raise AssertionError(f"{error}\nworker logs:\n{logs}") from None
        return fraud, dlq

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


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
