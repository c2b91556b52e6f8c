"""PROCESSING_GUARANTEE=exactly_once against the real broker: each batch is one Kafka
transaction (app.runtime.transactions), so a consumer reading ``fraud`` read_committed sees each
alert once, through crashes."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.kafka_io import produce
from tests.integration.pipeline import TIMEOUT, Pipeline
from tests.integration.test_faults import chunks, duplicates, finish, kill_three_times


def exactly_once(pipeline: Pipeline) -> Pipeline:
    pipeline.env["PROCESSING_GUARANTEE"] = "exactly_once"
    return pipeline


async def test_kill_9_three_times_leaves_no_duplicate(pipeline: Pipeline) -> None:
    fraud, _ = await kill_three_times(exactly_once(pipeline))
    assert duplicates(fraud) == 0


async def test_the_alerts_are_written_in_committed_transactions(pipeline: Pipeline) -> None:
    exactly_once(pipeline).worker().wait_ready(timeout=TIMEOUT)
    topic = pipeline.topics["transactions"]
    written = await produce(pipeline.bootstrap, topic, chunks(4)[0])
    fraud = await finish(pipeline, written)
    assert duplicates(fraud) == 0
    # each committed transaction leaves a marker: the topic's offsets run past its records
    consumer = AIOKafkaConsumer(bootstrap_servers=pipeline.bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(pipeline.topics["fraud"], p) for p in range(8)]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    assert sum(ends.values()) > len(fraud)
