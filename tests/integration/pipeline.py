"""A pipeline under test on the real broker: its own topics, app id and worker processes.

Shared by the integration tests: send generator records, start/kill workers, wait with a
deadline for the expected alerts, and compare them with tests/reference.py.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from localkafka import LocalKafka, free_ports

from app.errors import BadRecord
from app.models import rfc3339_ms
from app.parsing import parse_transaction
from generator import GeneratorConfig, generate
from tests.conftest import TopicFactory
from tests.integration.kafka_io import Written, alerts_by_kind, decoded, produce, read_until
from tests.integration.workers import WorkerProcess
from tests.reference import Expected, expected_alerts

TIMEOUT = 240.0
GUARANTEES = ("at_least_once", "exactly_once")  # PROCESSING_GUARANTEE
both_guarantees = pytest.mark.parametrize("guarantee", GUARANTEES)


class Pipeline:
    """One isolated pipeline: its own topics, app id and workers on the session broker."""

    def __init__(self, kafka: LocalKafka, topics: TopicFactory, root: Path) -> None:
        self.bootstrap = kafka.bootstrap
        # The test's own clients log in to a secure broker as its admin, the workers as 'fraud'.
        self.client_options = kafka.client_options()
        self.topics = topics.create(partitions=8)
        self.root = root
        app_id = f"fraud-{uuid.uuid4().hex[:8]}"
        self.env = {
            **kafka.client_env(),  # KAFKA_BOOTSTRAP, and a secure broker's login
            "APP_ID": app_id,
            "CONTROL_TOPIC": f"{app_id}-control",  # a threshold set in one test stays there
            "TRANSACTIONS_TOPIC": self.topics["transactions"],
            "FRAUD_TOPIC": self.topics["fraud"],
            "DLQ_TOPIC": self.topics["dlq"],
            "TOPIC_PARTITIONS": "8",
            # Pauses between a test's steps must not move event time: windows are closed at the
            # end by closing transactions (close_windows), as a bounded input ends in Flink.
            "IDLE_TIMEOUT": "0",
            "MAX_EVIDENCE": "20",
        }
        self.workers: list[WorkerProcess] = []

    def worker(self, ordinal: int = 0, env: dict[str, str] | None = None) -> WorkerProcess:
        """Start worker ``ordinal`` (again), with ``env`` on top of the pipeline's on its first
        start."""
        existing = [w for w in self.workers if w.name == f"fraud-worker-{ordinal}"]
        if existing:
            return existing[0].start()
        settings = {**self.env, **(env or {})}
        worker = WorkerProcess(ordinal, settings, self.root, free_ports(1)[0]).start()
        self.workers.append(worker)
        return worker

    async def send(self, cfg: GeneratorConfig) -> list[Written]:
        """Send the generator's records, then close every window (see close_windows)."""
        records = [(r.key, r.value) for r in generate(cfg)]
        written = await produce(
            self.bootstrap, self.topics["transactions"], records, client_options=self.client_options
        )
        return written + await self.close_windows(written, keyed=cfg.keyed)

    async def close_windows(
        self,
        written: list[Written],
        *,
        keyed: bool = True,
        partitions: Sequence[int] = range(8),
        bound_ms: int = 0,
    ) -> list[Written]:
        """Send one tiny transaction to every partition (of ``partitions``), SIZE plus the
        out-of-orderness ``bound_ms`` after the last event: every window of the data closes (the
        end of a bounded input). Returns them, for expect()."""
        times = []
        for record in written:
            with contextlib.suppress(BadRecord):  # malformed records have no time
                times.append(parse_transaction(record.value, max_bytes=1 << 20).time_ms)
        at = rfc3339_ms(max(times) + 600_000 + bound_ms)
        records = []
        for partition in partitions:
            pair = f"_end:_end-{partition}"
            key = pair.encode() if keyed else None
            records.append((key, f"{at};{pair.replace(':', ';')};0.01".encode()))
        return await produce(
            self.bootstrap,
            self.topics["transactions"],
            records,
            partitions=partitions,
            client_options=self.client_options,
        )

    async def wait_for(self, expected: Expected) -> tuple[list[Written], list[Written]]:
        """Read ``fraud`` until every expected window_closed alert is there, then the DLQ until
        it names as many distinct source positions as dead letters are expected (a replay after
        a crash or a rebalance repeats some: counting records would stop too early)."""

        missing: list[str] = []  # what the read in progress lacks, to name it on a timeout

        def complete(records: list[Written]) -> bool:
            closed = alerts_by_kind(records, "window_closed")
            missing[:] = [f"window_closed {i}" for i in sorted(set(expected.closed) - set(closed))]
            return not missing

        def all_dead(records: list[Written]) -> bool:
            got = dead_letters(records)
            missing[:] = [
                f"dead letter {d}" for d in sorted(set(expected.dead.items()) - set(got.items()))
            ]
            return len(got) >= len(expected.dead)

        # exactly-once: what a consumer of committed transactions sees
        committed = self.env.get("PROCESSING_GUARANTEE") == "exactly_once"
        options = {**self.client_options, "isolation_level": "read_committed"} if committed else {}
        try:
            fraud = await read_until(
                self.bootstrap,
                self.topics["fraud"],
                complete,
                timeout=TIMEOUT,
                what=f"{len(expected.closed)} window_closed alerts",
                client_options=options or self.client_options,
            )
            dlq = await read_until(
                self.bootstrap,
                self.topics["dlq"],
                all_dead,
                timeout=TIMEOUT,
                what=f"{len(expected.dead)} dead letters",
                client_options=options or self.client_options,
            )
        except AssertionError as error:
            logs = "\n".join(w.log_text()[-2000:] for w in self.workers)
            raise AssertionError(
                f"{error}\nmissing ({len(missing)}): {missing[:20]}\nworker logs:\n{logs}"
            ) from None
        if committed:  # each alert and dead letter in one committed transaction: read once
            alerts = Counter((a["alert_id"], a["kind"]) for a in decoded(fraud))
            letters = Counter((d["partition"], d["offset"]) for d in decoded(dlq))
            assert [a for a, n in alerts.items() if n > 1] == [], "alerts read twice"
            twice = {d for d, n in letters.items() if n > 1}
            assert not twice, "dead letters read twice: " + "\n".join(
                repr(d) for d in decoded(dlq) if (d["partition"], d["offset"]) in twice
            )
        return fraud, dlq

    def under(self, guarantee: str) -> Pipeline:
        """The workers started from now on run under ``guarantee``."""
        self.env["PROCESSING_GUARANTEE"] = guarantee
        return self

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


def expect_in_order(written: list[Written]) -> Expected:
    """Expectation for records in time order (no out-of-order ones): where each landed does not
    change the alerts, so the send order as one log serves any partitioning. Dead letters are
    keyed by send position here, not by partition and offset."""
    return expected_alerts((0, i, w.value) for i, w in enumerate(written))


def expect(written: list[Written], out_of_orderness_ms: int = 0) -> Expected:
    in_log_order = sorted(written, key=lambda w: (w.partition, w.offset))
    return expected_alerts(
        ((w.partition, w.offset, w.value) for w in in_log_order),
        out_of_orderness_ms=out_of_orderness_ms,
    )


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
