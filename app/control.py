"""Runtime threshold: a compacted control topic that every worker follows (like the broadcast
rules stream of Flink's dynamic fraud-detection demo).

``faust -A app set-threshold 12000`` writes ``{"threshold": "12000.00"}`` under the key
``threshold``; each worker reads the topic to its end before it processes input, then follows it
and applies the newest value to windows from then on. Every alert records the threshold in force.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from app import models
from app.errors import SettingsError
from app.settings import Settings
from app.topics import TopicError, kafka_unavailable

log = logging.getLogger(__name__)

THRESHOLD_KEY = b"threshold"
TOPIC_WAIT_SECONDS = 15.0  # for the broker's metadata of the control topic


def threshold_cents(text: str) -> int:
    """Dollars with at most two decimals, >= 0 -> cents; SettingsError otherwise."""
    try:
        cents = Decimal(text) * 100
    except InvalidOperation:
        raise SettingsError(f"threshold {text!r} is not an amount in dollars") from None
    if not cents.is_finite() or cents < 0 or cents != cents.to_integral_value():
        raise SettingsError(f"threshold {text} must be >= 0 with at most 2 decimals")
    return int(cents)


async def publish_threshold(settings: Settings, cents: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", **settings.security.client_options()
    )
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise await kafka_unavailable(settings, exc) from None
    try:
        try:  # without the topic, a send would wait for its metadata until the request timeout
            await asyncio.wait_for(
                producer.partitions_for(settings.control_topic), TOPIC_WAIT_SECONDS
            )
        except (UnknownTopicOrPartitionError, TimeoutError):  # Kafka names no missing topic
            raise TopicError(
                f"the control topic {settings.control_topic} does not exist on "
                f"{settings.bootstrap} (no metadata for it within {TOPIC_WAIT_SECONDS:g} s): a "
                "worker creates it when it starts; start one first"
            ) from None
        value = models.encode({"threshold": models.dollars(cents)})
        await producer.send_and_wait(settings.control_topic, key=THRESHOLD_KEY, value=value)
    finally:
        await producer.stop()


class ControlFollower:
    """Reads the control topic and hands each new threshold to ``apply``."""

    def __init__(self, settings: Settings, apply: Callable[[int], None]) -> None:
        self.settings = settings
        self.apply = apply
        self.consumer: AIOKafkaConsumer | None = None

    async def catch_up(self) -> None:
        """Start, and read every control record written so far."""
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            enable_auto_commit=False,
            **self.settings.security.client_options(),
        )
        await self.consumer.start()
        partition = TopicPartition(self.settings.control_topic, 0)
        self.consumer.assign([partition])
        await self.consumer.seek_to_beginning(partition)
        end = (await self.consumer.end_offsets([partition]))[partition]
        while await self.consumer.position(partition) < end:
            await self.poll(timeout_ms=1000)

    async def follow(self) -> None:
        while True:
            await self.poll(timeout_ms=1000)

    async def poll(self, timeout_ms: int) -> None:
        assert self.consumer is not None
        batches = await self.consumer.getmany(timeout_ms=timeout_ms)
        for records in batches.values():
            for record in records:
                if record.key != THRESHOLD_KEY or record.value is None:
                    continue
                try:
                    cents = threshold_cents(str(models.decode(record.value)["threshold"]))
                except (SettingsError, ValueError, KeyError, TypeError) as exc:
                    log.warning("ignoring control record at offset %d: %s", record.offset, exc)
                    continue
                log.info("threshold is now %s", models.dollars(cents))
                self.apply(cents)

    async def stop(self) -> None:
        if self.consumer is not None:
            await asyncio.shield(self.consumer.stop())
