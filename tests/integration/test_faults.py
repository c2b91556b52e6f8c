"""Faults on the real broker: nothing lost, nothing counted twice, every offset committed.

Each scenario sends 20,000 seeded transactions in chunks and injects its fault between chunks,
while the workers are busy; the expected alerts come from tests/reference.py. Pass = no missing
and no unexpected window_closed alert, every repeated alert_id with the same content, the input
fully committed by the group. Figures (faults, duplicates, recovery seconds) are appended to
.run/fault-report.jsonl for the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from faust.types import TP
from localkafka import LocalKafka, free_ports

from app.runtime.fencing import GENERATION_HEADER
from generator import GeneratorConfig, generate
from tests.conftest import TopicFactory
from tests.integration.kafka_io import (
    Written,
    produce,
    read_until,
    topic_partitions,
    wait_committed,
)
from tests.integration.netfaults import Proxy
from tests.integration.pipeline import TIMEOUT, Pipeline, assert_alerts, both_guarantees, expect
from tests.integration.workers import WorkerProcess

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


RESTARTED = r"restarting, the local tables rebuilt"  # app.runtime.localstate.restart_afresh


def logged(pipeline: Pipeline, pattern: str) -> int:
    """How many times the workers logged a line matching ``pattern`` (summing its count group,
    if it has one)."""
    found = [m for w in pipeline.workers for m in re.finditer(pattern, w.log_text())]
    return sum(int(m.group(1)) if m.groups() else 1 for m in found)


def report(
    scenario: str,
    faults: int,
    fraud: list[Written],
    recovery_s: list[float],
    pipeline: Pipeline,
) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    with REPORT.open("a") as out:
        row = {
            "scenario": scenario,
            "guarantee": pipeline.env.get("PROCESSING_GUARANTEE", "at_least_once"),
            "events": STREAM.count,
            "faults": faults,
            "missing": 0,  # asserted
            "duplicates": duplicates(fraud),
            "recovery_s": [round(s, 1) for s in recovery_s],
            # the worker's own remedies (app.runtime.localstate.restart_afresh, app.runtime.fencing)
            "restarts": logged(pipeline, RESTARTED),
            "fenced_records": logged(pipeline, r"(\d+) changelog records not restored"),
        }
        out.write(json.dumps(row) + "\n")


@contextlib.contextmanager
def behind_a_proxy(tmp_path: Path) -> Iterator[tuple[Pipeline, Proxy, dict[str, str]]]:
    """A broker of its own, one of its listeners reached through a proxy the test controls
    (tests/integration/netfaults.py); a pipeline on it with an 8 s session timeout; the
    environment that puts a worker behind the proxy."""
    port, controller, listener, shown = free_ports(4)
    broker = LocalKafka(tmp_path / "kafka", port, controller, proxied=[(listener, shown)])
    broker.start()
    link = Proxy(shown, listener).start()
    pipeline = Pipeline(broker, TopicFactory(broker.bootstrap), tmp_path)
    pipeline.env["KAFKA_SESSION_TIMEOUT"] = "8"
    try:
        yield pipeline, link, {"KAFKA_BOOTSTRAP": f"127.0.0.1:{shown}"}
    finally:
        pipeline.stop()
        link.stop()
        broker.stop()


async def taken_over(
    pipeline: Pipeline, other: WorkerProcess, part: list[tuple[bytes | None, bytes]]
) -> list[Written]:
    """While a worker is gone past the session timeout: ``other`` comes to own every partition,
    then gets ``part`` and reads it."""
    partitions = int(pipeline.env["TOPIC_PARTITIONS"])
    other.wait_metric("fraud_assigned_partitions", above=partitions - 1, timeout=TIMEOUT)
    written = await produce(pipeline.bootstrap, pipeline.topics["transactions"], part)
    other.wait_metric("fraud_records_received_total", above=len(part) - 1, timeout=TIMEOUT)
    return written


async def finish(pipeline: Pipeline, written: list[Written]) -> list[Written]:
    written += await pipeline.close_windows(written)
    expected = expect(written)
    fraud, _ = await pipeline.wait_for(expected)
    assert_alerts(fraud, expected)  # under exactly-once, also: each alert read once
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
        victim = workers[round_ % 3]
        before = victim.metric("fraud_records_received_total")  # before the chunk: it may be
        written += await produce(pipeline.bootstrap, topic, part)  # done with it by the end
        if round_ < 3:
            victim.wait_metric("fraud_records_received_total", above=before, timeout=TIMEOUT)
            victim.kill()  # mid-chunk: no shutdown, no flush, no commit
            recovery.append(victim.restart_timed(TIMEOUT))
    return await finish(pipeline, written), recovery


@both_guarantees
async def test_kill_9_three_times_with_3_workers(pipeline: Pipeline, guarantee: str) -> None:
    fraud, recovery = await kill_three_times(pipeline.under(guarantee))
    report("kill -9 x3, 3 workers", 3, fraud, recovery, pipeline)


@both_guarantees
async def test_broker_restart_mid_run(tmp_path: Path, guarantee: str) -> None:
    broker = LocalKafka(tmp_path / "kafka", *free_ports(2))
    broker.start()
    pipeline = Pipeline(broker, TopicFactory(broker.bootstrap), tmp_path).under(guarantee)
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
        # under exactly-once too: a transaction open across the restart commits once the
        # broker is back (app.runtime.producer.CoordinatorRetryingSender)
        assert logged(pipeline, RESTARTED) == 0, "a worker restarted in place"
        report(
            f"broker restart ({outage:.0f}s down)", 1, fraud, [time.monotonic() - started], pipeline
        )
    finally:
        pipeline.stop()
        broker.stop()


async def test_a_stop_with_the_broker_unreachable_ends_in_time_and_loses_nothing(
    tmp_path: Path,
) -> None:
    # The broker frozen (SIGSTOP: connections hang, as behind a dead network) while the worker
    # has records it cannot deliver; SIGTERM must end within STOP_TIMEOUT, and the next start,
    # the broker back, redoes what was not delivered.
    broker = LocalKafka(tmp_path / "kafka", *free_ports(2))
    broker.start()
    pipeline = Pipeline(broker, TopicFactory(broker.bootstrap), tmp_path)
    pipeline.env["STOP_TIMEOUT"] = "8"
    pid = broker.pid()
    assert pid is not None
    try:
        worker = pipeline.worker()
        worker.wait_ready(timeout=TIMEOUT)
        written = await produce(pipeline.bootstrap, pipeline.topics["transactions"], chunks(1)[0])
        worker.wait_metric("fraud_records_received_total", above=0, timeout=TIMEOUT)
        os.kill(pid, signal.SIGSTOP)
        try:
            stopping = time.monotonic()
            assert worker.process is not None
            os.killpg(worker.process.pid, signal.SIGTERM)
            code = worker.exit_code(timeout=60)
            took = time.monotonic() - stopping
        finally:
            os.kill(pid, signal.SIGCONT)
        assert took < 8 + 10, f"the stop took {took:.0f}s with STOP_TIMEOUT=8"
        assert code == 1, code  # the deadline ended it: the commit alone waits for the broker
        assert "the stop took more than STOP_TIMEOUT (8s)" in worker.log_text()
        restarted = time.monotonic()
        worker.start()
        fraud = await finish(pipeline, written)
        report(
            f"stop with the broker frozen ({took:.0f}s)",
            1,
            fraud,
            [time.monotonic() - restarted],
            pipeline,
        )
    finally:
        pipeline.stop()
        broker.stop()


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
        # past the session timeout: the group drops the frozen one, the other takes over every
        # partition and processes what comes next
        partitions = int(pipeline.env["TOPIC_PARTITIONS"])
        other.wait_metric("fraud_assigned_partitions", above=partitions - 1, timeout=TIMEOUT)
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
    assert logged(pipeline, r"stopped for \d+s, past the session timeout") == 1  # it restarted
    report("SIGSTOP > session timeout", 1, fraud, [], pipeline)


async def test_a_worker_cut_off_past_the_session_timeout_rebuilds_its_tables(
    tmp_path: Path,
) -> None:
    # Found by the nemesis (seed 101): a worker cut off from the broker keeps its event loop
    # running, so the stall guard does not see it. The batch it had in hand went to its local
    # tables and, held by the dead link, to the changelog after the new owner's records, moving
    # its restore point past them; given its partition back, it closed a window with one
    # transaction less than the new owner had. It must rebuild its tables, as after a stall.
    with behind_a_proxy(tmp_path) as (pipeline, link, proxied):
        cut = pipeline.worker(0, env=proxied)
        other = pipeline.worker(1)
        for worker in (cut, other):
            worker.wait_ready(timeout=TIMEOUT)
        parts = chunks(3)
        topic = pipeline.topics["transactions"]
        written = await produce(pipeline.bootstrap, topic, parts[0])
        cut.wait_metric("fraud_records_received_total", above=0, timeout=TIMEOUT)
        link.cut()
        try:
            written += await taken_over(pipeline, other, parts[1])
        finally:
            link.heal()
        healed = time.monotonic()
        # its next heartbeat tells it the group dropped it; the last part is for its rebuilt tables
        dropped = "the consumer group dropped this worker"
        cut.wait_until(lambda: dropped in cut.log_text(), "rejoined under a new id", TIMEOUT)
        cut.wait_ready(timeout=TIMEOUT)
        written += await produce(pipeline.bootstrap, topic, parts[2])
        fraud = await finish(pipeline, written)
        assert cut.alive() and other.alive()
        assert logged(pipeline, dropped) == 1  # it restarted once
        report("network cut > session timeout", 1, fraud, [time.monotonic() - healed], pipeline)


@both_guarantees
async def test_a_lost_data_dir_is_rebuilt_from_the_changelog(
    pipeline: Pipeline, guarantee: str
) -> None:
    worker = pipeline.under(guarantee).worker(0)
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
    report("data dir deleted", 1, fraud, [recovery], pipeline)


async def test_a_replaced_writer_s_changelog_records_are_not_restored(pipeline: Pipeline) -> None:
    # what a worker frozen past the session timeout sends when it resumes, made on purpose: a
    # record of an older generation, written before the newest owner's, after them in the log
    worker = pipeline.worker(0)
    worker.wait_ready(timeout=TIMEOUT)
    lines = [b"2017-07-23T00:00:01Z;1;2;5", b"2017-07-23T00:00:02Z;1;2;7"]
    changelog = f"{pipeline.env['APP_ID']}-pair-windows-changelog"
    for count, line in enumerate(lines, 1):  # one batch each: a changelog record each
        await produce(pipeline.bootstrap, pipeline.topics["transactions"], [(b"1:2", line)])
        records = await pair_records(pipeline.bootstrap, changelog, b"1:2", count)
    first, last = records
    state = worker.get("/pair/1:2")[1]["windows"]
    assert [w["count"] for w in state] == [2] * len(state)
    zombie = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
    await zombie.start()
    try:
        older = b"%d" % (int(dict(last.headers)[GENERATION_HEADER]) - 1)
        await zombie.send_and_wait(
            changelog, key=first.key, value=first.value, partition=first.partition,
            timestamp_ms=first.timestamp - 1000,  # before the owner's first write (its clock's)
            headers=[(GENERATION_HEADER, older)],
        )  # fmt: skip
    finally:
        await zombie.stop()
    worker.stop()
    shutil.rmtree(worker.data_dir)  # restored from the changelog alone
    worker.restart_timed(TIMEOUT)
    assert worker.get("/pair/1:2")[1]["windows"] == state  # not the one-transaction value
    assert logged(pipeline, r"(\d+) changelog records not restored") == 1


async def pair_records(bootstrap: str, topic: str, key: bytes, count: int) -> list[Any]:
    """The first ``count`` changelog records of ``key`` (with headers and timestamps)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        found: list[Any] = []
        deadline = time.monotonic() + TIMEOUT
        while len(found) < count:
            assert time.monotonic() < deadline, f"{len(found)} records of {key!r} on {topic}"
            batch = await consumer.getmany(timeout_ms=1000)
            found += [m for ms in batch.values() for m in ms if m.key == key]
        return found[:count]
    finally:
        await consumer.stop()


async def test_the_input_watch_asks_the_broker_for_ends_and_commits(
    kafka: LocalKafka, topics: TopicFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # app.agents._stuck_input compares the broker's committed offsets, not Faust's memory of
    # them, with the end offsets
    from app import agents

    topic = topics.create(partitions=2)["transactions"]
    group = f"group-{topic}"
    monkeypatch.setattr(
        agents, "settings", replace(agents.settings, bootstrap=kafka.bootstrap, app_id=group)
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        for value in (b"a", b"b", b"c"):
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()
    partitions = [TP(topic, 0), TP(topic, 1)]
    offsets = agents.BrokerOffsets()
    try:
        assert await offsets.ends(partitions) == {TP(topic, 0): 3, TP(topic, 1): 0}
        nothing = await answered(lambda: offsets.committed(partitions))  # a new group's coordinator
        assert nothing == {TP(topic, 0): None, TP(topic, 1): None}
        await commit(kafka.bootstrap, group, TopicPartition(topic, 0), 2)
        assert await offsets.committed(partitions) == {TP(topic, 0): 2, TP(topic, 1): None}
    finally:
        await offsets.stop()


async def answered(asking: Any) -> Any:
    """What ``asking`` (a function of no arguments returning an awaitable) answers, asked
    again while Kafka is not ready to (a new group's coordinator loading)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return await asking()
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def commit(bootstrap: str, group: str, partition: TopicPartition, offset: int) -> None:
    """Commit ``offset`` for ``group``, retrying while a new group's coordinator loads."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([partition])
        await answered(lambda: consumer.commit({partition: offset}))
    finally:
        await consumer.stop()
