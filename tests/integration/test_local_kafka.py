"""The local broker that every integration test runs against: it answers real Kafka clients,
creates topics with the asked partition count, and carries a record from producer to consumer.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from localkafka import LocalKafka, create_topics, kafka_answers

if TYPE_CHECKING:
    from conftest import TopicFactory


async def test_broker_answers_a_kafka_client(kafka: LocalKafka) -> None:
    host, port = kafka.bootstrap.split(":")
    assert host == "127.0.0.1"
    assert kafka_answers(host, int(port))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [(host, int(port))]


async def test_topic_is_created_with_the_asked_partitions(
    kafka: LocalKafka, topics: TopicFactory
) -> None:
    names = topics.create(partitions=8)  # the project's three roles by default
    assert set(names) == {"transactions", "fraud", "dlq"}
    assert names["dlq"].startswith("transactions-dlq-")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(names.values()))
    finally:
        await admin.close()
    partitions = {t["topic"]: sorted(p["partition"] for p in t["partitions"]) for t in described}
    assert partitions == {name: list(range(8)) for name in names.values()}
    # Idempotent: creating them again is fine and creates nothing.
    assert create_topics(kafka.bootstrap, dict.fromkeys(names.values(), 8)) == []


async def test_a_record_goes_from_producer_to_consumer(
    kafka: LocalKafka, topics: TopicFactory
) -> None:
    topic = topics.create(partitions=8, transactions="transactions")["transactions"]
    value = b"Sunday, 23-Jul-17 01:06:47 UTC;66;26;7810"
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, value, key=b"66:26")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, sent.partition)])
    await consumer.start()
    try:
        received = []
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            received = [record for batch in batches.values() for record in batch]
    finally:
        await consumer.stop()
    assert [(r.key, r.value, r.offset) for r in received] == [(b"66:26", value, sent.offset)], (
        f"expected one record at partition {sent.partition} offset {sent.offset}, got {received}"
    )
