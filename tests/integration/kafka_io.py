"""Producing test input and reading topics back, against the real broker, with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

import app.models as models


class Written(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


async def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    partitions: Iterable[int | None] | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> list[Written]:
    """Send (key, value) records in order, to the given partitions or by key; return where each
    landed. ``client_options``: a secure broker's login (``LocalKafka.client_options()``)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, **(client_options or {})
    )
    await producer.start()
    try:
        pending = []
        targets = iter(partitions) if partitions is not None else None
        for key, value in records:
            partition = next(targets) if targets is not None else None
            future = await producer.send(topic, key=key, value=value, partition=partition)
            pending.append((key, value, future))
        out = []
        for key, value, future in pending:
            meta = await future
            out.append(Written(meta.partition, meta.offset, key, value))
        return out
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[Written]], bool],
    *,
    timeout: float,
    what: str,
    client_options: Mapping[str, Any] | None = None,
) -> list[Written]:
    """Read ``topic`` from the beginning until ``done(records)``; fail after ``timeout``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **(client_options or {})
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        records: list[Written] = []
        deadline = time.monotonic() + timeout
        while not done(records):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what}; "
                    f"got {len(records)} records on {topic}"
                )
            batch = await consumer.getmany(timeout_ms=int(min(left, 1.0) * 1000))
            for messages in batch.values():
                records.extend(Written(m.partition, m.offset, m.key, m.value) for m in messages)
        return records
    finally:
        await consumer.stop()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise AssertionError(f"topic {topic} has no partitions")


def decoded(records: Iterable[Written]) -> list[dict[str, Any]]:
    return [models.decode(r.value) for r in records if r.value is not None]


def alerts_by_kind(records: Iterable[Written], kind: str) -> dict[str, dict[str, Any]]:
    """alert_id -> alert of one kind; fails if one alert_id arrives with two contents."""
    found: dict[str, dict[str, Any]] = {}
    for alert in decoded(records):
        if alert["kind"] != kind:
            continue
        content = {k: v for k, v in alert.items() if k != "detected_at"}
        first = found.setdefault(alert["alert_id"], content)
        assert first == content, f"{alert['alert_id']} arrived with two different contents"
    return found


async def uncommitted(bootstrap: str, group: str, topic: str) -> int:
    """Records of ``topic`` the consumer group has not committed yet (its lag)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = [TopicPartition(topic, p) for p in await topic_partitions(consumer, topic)]
        ends = await consumer.end_offsets(partitions)
        return sum(
            end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
        )
    finally:
        await consumer.stop()
        await admin.close()


async def wait_committed(bootstrap: str, group: str, topic: str, timeout: float) -> None:
    """Poll until every record of ``topic`` is committed by ``group``."""
    deadline = time.monotonic() + timeout
    lag = await uncommitted(bootstrap, group, topic)
    while lag:
        if time.monotonic() > deadline:
            raise AssertionError(f"{lag} records of {topic} still uncommitted by {group}")
        await asyncio.sleep(0.5)
        lag = await uncommitted(bootstrap, group, topic)
