"""PROCESSING_GUARANTEE=exactly_once against the real broker: each batch is one Kafka
transaction (app.runtime.transactions), so a consumer reading ``fraud`` read_committed sees each
alert once, and a worker that wakes up after its partitions moved on cannot write. The fault
scenarios run under both guarantees in test_faults.py."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.kafka_io import produce
from tests.integration.pipeline import TIMEOUT, Pipeline
from tests.integration.test_faults import behind_a_proxy, chunks, finish, report, taken_over


async def test_the_alerts_are_written_in_committed_transactions(pipeline: Pipeline) -> None:
    pipeline.under("exactly_once").worker().wait_ready(timeout=TIMEOUT)
    topic = pipeline.topics["transactions"]
    written = await produce(pipeline.bootstrap, topic, chunks(4)[0])
    fraud = await finish(pipeline, written)  # read_committed, each alert once
    # each committed transaction leaves a marker: the topic's offsets run past its records
    consumer = AIOKafkaConsumer(bootstrap_servers=pipeline.bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(pipeline.topics["fraud"], p) for p in range(8)]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    assert sum(ends.values()) > len(fraud)


async def test_a_worker_frozen_past_the_session_timeout_is_fenced(tmp_path: Path) -> None:
    # A zombie: frozen (SIGSTOP) in the middle of its batches' transactions, replaced, resumed.
    # Its link is slow, so a transaction spans several round trips and the freeze lands in one.
    # The new owner's producer start aborted the open transaction and fenced its producer: the
    # zombie's next write fails, it logs it and restarts; a read_committed reader of fraud sees
    # the exact alerts, each once.
    with behind_a_proxy(tmp_path) as (pipeline, link, proxied):
        zombie = pipeline.under("exactly_once").worker(0, env=proxied)
        other = pipeline.worker(1)
        for worker in (zombie, other):
            worker.wait_ready(timeout=TIMEOUT)
        parts = chunks(3)
        topic = pipeline.topics["transactions"]
        link.slow(0.3)
        written = await produce(pipeline.bootstrap, topic, parts[0])
        zombie.wait_metric("fraud_records_received_total", above=0, timeout=TIMEOUT)
        assert zombie.process is not None
        zombie.process.send_signal(signal.SIGSTOP)
        try:
            written += await taken_over(pipeline, other, parts[1])
        finally:
            zombie.process.send_signal(signal.SIGCONT)
            link.heal()
        resumed = time.monotonic()
        written += await produce(pipeline.bootstrap, topic, parts[2])
        fraud = await finish(pipeline, written)
        assert zombie.alive() and other.alive()
        failed = r"the transaction of \S+ failed \((ProducerFenced|InvalidProducerEpoch)"
        assert re.search(failed, zombie.log_text()), "the zombie's writes were not refused"
        assert not re.search(failed, other.log_text())  # the healthy one was not fenced
        report(
            "SIGSTOP > session timeout (zombie)", 1, fraud, [time.monotonic() - resumed], pipeline
        )
