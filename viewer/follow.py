"""Read the alert topic from Kafka: every partition, no consumer group, committed records only.

Manual assignment instead of a group keeps viewers independent (ten viewers all see every alert
and none triggers a rebalance of the others) and never commits offsets. Partitions are found
from cluster metadata and re-read periodically, so partitions added later are followed too.
``read_committed`` hides records of aborted transactions when the worker runs exactly-once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from viewer.errors import BrokerUnavailable, TopicNotFound
from viewer.escaping import printable

CLIENT_ID = "fraud-viewer"

Warn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as fetched, before any parsing; ``value`` is ``None`` for a tombstone."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


class KafkaLogRelay(logging.Handler):
    """Turns aiokafka's log records into rate-limited one-line warnings.

    While the broker is down aiokafka logs the same connection error every retry (every 100 ms
    or so); a person needs to read it once in a while, not thousands of times. Before the viewer
    has connected the relay stays silent: the start-up error says it all in one line.
    """

    def __init__(self, warn: Warn, every_s: float = 30.0) -> None:
        super().__init__(level=logging.WARNING)
        self._warn = warn
        self._every_s = every_s
        self._last_shown: dict[str, float] = {}
        self.muted = True

    def emit(self, record: logging.LogRecord) -> None:
        if self.muted:
            return
        try:
            message = record.getMessage()
        except Exception:  # a broken log call in a library must not stop the viewer
            return
        # Messages differ only in numbers (node ids, attempts): group them on the format string.
        key = str(record.msg)
        now = time.monotonic()
        last = self._last_shown.get(key)
        if last is not None and now - last < self._every_s:
            return
        self._last_shown[key] = now
        self._warn(f"kafka: {printable(message.splitlines()[0] if message else '', 300)}")


@contextmanager
def relay_kafka_logs(warn: Warn, every_s: float = 30.0) -> Iterator[KafkaLogRelay]:
    """Send aiokafka's warnings and errors to ``warn`` (and nowhere else) while inside."""
    logger = logging.getLogger("aiokafka")
    relay = KafkaLogRelay(warn, every_s)
    saved = (logger.level, logger.propagate)
    logger.addHandler(relay)
    # Without this, Python's last-resort handler would print aiokafka's multi-line errors too.
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    try:
        yield relay
    finally:
        logger.removeHandler(relay)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


async def _partitions(admin: Any, topic: str, bootstrap: str) -> set[int]:
    # Metadata for *all* topics: asking for one topic by name would let a broker with
    # auto.create.topics.enable create it with default settings behind the worker's back.
    try:
        topics: list[dict[str, Any]] = await admin.describe_topics(None)
    except (KafkaError, OSError, TimeoutError) as err:
        raise BrokerUnavailable(
            f"cannot read topic metadata from Kafka at {bootstrap}: {err}"
        ) from None
    for entry in topics:
        if entry.get("topic") == topic and entry.get("error_code", 0) == 0:
            return {int(part["partition"]) for part in entry.get("partitions", [])}
    raise TopicNotFound(
        f"topic {printable(topic)!r} does not exist on Kafka at {bootstrap}: start the worker "
        "(it creates the topic) or pass --topic / FRAUD_TOPIC"
    )


async def follow(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool,
    warn: Warn,
    refresh_s: float = 30.0,
    poll_ms: int = 500,
) -> AsyncGenerator[RawRecord, None]:
    """Yield the records of every partition of ``topic``, from the end or from the beginning.

    Raises :class:`BrokerUnavailable` when Kafka cannot be reached at start and
    :class:`TopicNotFound` when the topic is missing (at start, or deleted later). Once
    following, a broker outage is retried by aiokafka and reported through ``warn``. Use it
    under :func:`contextlib.aclosing` so the consumer is stopped when the caller stops early.
    """
    with relay_kafka_logs(warn) as relay:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, client_id=CLIENT_ID, request_timeout_ms=15_000
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=CLIENT_ID,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            # Only used when a saved position fell off the log (retention deleted it while the
            # viewer lagged): read what is left rather than skip to the end.
            auto_offset_reset="earliest",
            request_timeout_ms=15_000,
        )
        async with AsyncExitStack() as stack:
            # Both are safe to close after a failed start, and must be, or aiokafka warns
            # about unclosed clients on the way out.
            stack.push_async_callback(admin.close)
            stack.push_async_callback(consumer.stop)
            try:
                await admin.start()
                await consumer.start()
            except KafkaConnectionError:
                raise BrokerUnavailable(
                    f"cannot reach Kafka at {bootstrap}: is the broker running? "
                    "(set --bootstrap or KAFKA_BOOTSTRAP)"
                ) from None
            except KafkaError as err:
                raise BrokerUnavailable(f"cannot use Kafka at {bootstrap}: {err}") from None
            assigned = await _partitions(admin, topic, bootstrap)
            partitions = [TopicPartition(topic, number) for number in sorted(assigned)]
            consumer.assign(partitions)
            if from_beginning:
                await consumer.seek_to_beginning(*partitions)
            else:
                await consumer.seek_to_end(*partitions)
            relay.muted = False
            refresh_at = time.monotonic() + refresh_s
            while True:
                batches = await consumer.getmany(timeout_ms=poll_ms)
                for partition in sorted(batches, key=lambda tp: tp.partition):
                    for message in batches[partition]:
                        yield RawRecord(topic, partition.partition, message.offset, message.value)
                if time.monotonic() >= refresh_at:
                    refresh_at = time.monotonic() + refresh_s
                    assigned = await _follow_new_partitions(
                        consumer, admin, topic, bootstrap, assigned, warn
                    )


async def _follow_new_partitions(
    consumer: Any, admin: Any, topic: str, bootstrap: str, assigned: set[int], warn: Warn
) -> set[int]:
    """Add partitions created since the last look; keep reading the old ones where we were."""
    try:
        current = await _partitions(admin, topic, bootstrap)
    except BrokerUnavailable as err:
        # Transient while following: aiokafka keeps retrying the fetches, so do we.
        warn(str(err))
        return assigned
    added = current - assigned
    if not added:
        return assigned
    # assign() replaces the assignment and forgets positions: note them first.
    positions = {
        number: await consumer.position(TopicPartition(topic, number)) for number in assigned
    }
    consumer.assign([TopicPartition(topic, number) for number in sorted(assigned | added)])
    for number, offset in positions.items():
        consumer.seek(TopicPartition(topic, number), offset)
    # Everything in a partition that did not exist at start is newer than the viewer.
    await consumer.seek_to_beginning(*(TopicPartition(topic, number) for number in added))
    warn(f"following {len(added)} new partition(s) of {printable(topic)!r}")
    return assigned | added
