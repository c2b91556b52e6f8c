"""Read topics from Kafka: every partition, no consumer group, committed records only.

Manual assignment instead of a group keeps viewers independent (ten viewers all see every alert
and none triggers a rebalance of the others) and never commits offsets. Partitions are found
from cluster metadata and re-read periodically, so partitions added later are followed too.
``read_committed`` hides records of aborted transactions when the worker runs exactly-once.
:func:`follow` follows topics without end (the viewer); :func:`read_to_end` reads a topic up to
where it ended when the read began, and :func:`fetch_timestamps` looks up single records
(``fraud-verify``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from kafka_security import PLAINTEXT, KafkaSecurity
from kafka_security.failures import explain_refusal
from viewer.errors import BrokerUnavailable, TopicNotFound
from viewer.escaping import printable

CLIENT_ID = "fraud-viewer"

Warn = Callable[[str], None]
Progress = Callable[[int, int], None]
"""Called with (records read, records to read) while :func:`read_to_end` reads."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as fetched, before any parsing; ``value`` is ``None`` for a tombstone."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


class CaughtUp:
    """Marks the point where :func:`follow` has read what the alert topic held when it began."""

    def __repr__(self) -> str:
        return "CAUGHT_UP"


CAUGHT_UP = CaughtUp()

Fetched = RawRecord | CaughtUp
"""What :func:`follow` yields: records, and once :data:`CAUGHT_UP`."""


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


async def _topic_partitions(admin: Any, bootstrap: str) -> dict[str, set[int]]:
    """Every topic of the cluster and its partitions."""
    # Metadata for *all* topics: asking for one topic by name would let a broker with
    # auto.create.topics.enable create it with default settings behind the worker's back.
    try:
        topics: list[dict[str, Any]] = await admin.describe_topics(None)
    except (KafkaError, OSError, TimeoutError) as err:
        raise BrokerUnavailable(
            f"cannot read topic metadata from Kafka at {bootstrap}: {err}"
        ) from None
    return {
        str(entry.get("topic")): {int(part["partition"]) for part in entry.get("partitions", [])}
        for entry in topics
        if entry.get("error_code", 0) == 0
    }


def _missing(topic: str, bootstrap: str, hint: str) -> TopicNotFound:
    return TopicNotFound(
        f"topic {printable(topic)!r} does not exist on Kafka at {bootstrap}: {hint}"
    )


_FRAUD_HINT = "start the worker (it creates the topic) or pass --topic / FRAUD_TOPIC"


async def _partitions(admin: Any, topic: str, bootstrap: str, hint: str = _FRAUD_HINT) -> set[int]:
    partitions = (await _topic_partitions(admin, bootstrap)).get(topic)
    if not partitions:
        raise _missing(topic, bootstrap, hint)
    return partitions


@asynccontextmanager
async def _session(
    bootstrap: str, security: KafkaSecurity, warn: Warn
) -> AsyncIterator[tuple[Any, Any, KafkaLogRelay]]:
    """A started admin client and consumer (no group, read_committed), stopped on the way out."""
    with relay_kafka_logs(warn) as relay:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id=CLIENT_ID,
            request_timeout_ms=15_000,
            **security.client_options(),
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
            **security.client_options(),
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
                refusal = await explain_refusal(bootstrap, security)
                raise BrokerUnavailable(
                    refusal
                    or f"cannot reach Kafka at {bootstrap}: is the broker running? "
                    "(set --bootstrap or KAFKA_BOOTSTRAP)"
                ) from None
            except KafkaError as err:
                raise BrokerUnavailable(f"cannot use Kafka at {bootstrap}: {err}") from None
            yield admin, consumer, relay


async def follow(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool,
    warn: Warn,
    security: KafkaSecurity = PLAINTEXT,
    also: Sequence[str] = (),
    refresh_s: float = 30.0,
    poll_ms: int = 500,
) -> AsyncGenerator[Fetched, None]:
    """Yield the records of every partition of ``topic``, from the end or from the beginning.

    :data:`CAUGHT_UP` comes once, after the last record that ``topic`` held at the start (at
    once when reading from the end), so a reader can show a backlog settled. Topics in ``also``
    (the dead-letter topic) are followed the same way, but may be missing: that is one
    warning, and they are followed once they appear. Raises :class:`BrokerUnavailable` when
    Kafka cannot be reached at start and :class:`TopicNotFound` when ``topic`` is missing (at
    start, or deleted later). Once following, a broker outage is retried by aiokafka and
    reported through ``warn``. Use it under :func:`contextlib.aclosing` so the consumer is
    stopped when the caller stops early.
    """
    async with _session(bootstrap, security, warn) as (admin, consumer, relay):
        found = await _topic_partitions(admin, bootstrap)
        if not found.get(topic):
            raise _missing(topic, bootstrap, _FRAUD_HINT)
        wanted = [topic, *(name for name in also if name != topic)]
        assigned = {name: found[name] for name in wanted if found.get(name)}
        for name in wanted:
            if name not in assigned:
                warn(f"topic {printable(name)!r} does not exist (yet); following it once it does")
        partitions = [
            TopicPartition(name, number)
            for name, numbers in assigned.items()
            for number in sorted(numbers)
        ]
        consumer.assign(partitions)
        backlog: dict[TopicPartition, int] = {}
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
            alerts = [tp for tp in partitions if tp.topic == topic]
            backlog = await consumer.end_offsets(alerts)
        else:
            await consumer.seek_to_end(*partitions)
        relay.muted = False
        backlog = {tp: end for tp, end in backlog.items() if await consumer.position(tp) < end}
        if not backlog:
            yield CAUGHT_UP
        refresh_at = time.monotonic() + refresh_s
        while True:
            batches = await consumer.getmany(timeout_ms=poll_ms)
            for part in sorted(batches, key=lambda tp: (tp.topic != topic, tp.topic, tp.partition)):
                for message in batches[part]:
                    yield RawRecord(part.topic, part.partition, message.offset, message.value)
            if backlog:
                # Positions also move over transaction markers, which are never yielded.
                for tp, end in list(backlog.items()):
                    if await consumer.position(tp) >= end:
                        del backlog[tp]
                if not backlog:
                    yield CAUGHT_UP
            if time.monotonic() >= refresh_at:
                refresh_at = time.monotonic() + refresh_s
                assigned = await _follow_new_partitions(
                    consumer, admin, topic, wanted, bootstrap, assigned, warn
                )


async def _follow_new_partitions(
    consumer: Any,
    admin: Any,
    topic: str,
    wanted: Sequence[str],
    bootstrap: str,
    assigned: dict[str, set[int]],
    warn: Warn,
) -> dict[str, set[int]]:
    """Add partitions created since the last look; keep reading the old ones where we were."""
    try:
        found = await _topic_partitions(admin, bootstrap)
    except BrokerUnavailable as err:
        # Transient while following: aiokafka keeps retrying the fetches, so do we.
        warn(str(err))
        return assigned
    if not found.get(topic):
        raise _missing(topic, bootstrap, _FRAUD_HINT)
    added = {
        name: found[name] - assigned.get(name, set())
        for name in wanted
        if found.get(name, set()) - assigned.get(name, set())
    }
    if not added:
        return assigned
    current = [
        TopicPartition(name, number) for name, numbers in assigned.items() for number in numbers
    ]
    # assign() replaces the assignment and forgets positions: note them first.
    positions = {tp: await consumer.position(tp) for tp in current}
    new = [TopicPartition(name, number) for name, numbers in added.items() for number in numbers]
    consumer.assign(sorted([*current, *new]))
    for tp, offset in positions.items():
        consumer.seek(tp, offset)
    # Everything in a partition that did not exist at start is newer than the viewer.
    await consumer.seek_to_beginning(*new)
    for name, numbers in added.items():
        warn(f"following {len(numbers)} new partition(s) of {printable(name)!r}")
    merged = {name: set(numbers) for name, numbers in assigned.items()}
    for name, numbers in added.items():
        merged.setdefault(name, set()).update(numbers)
    return merged


async def read_to_end(
    bootstrap: str,
    topic: str,
    *,
    warn: Warn,
    security: KafkaSecurity = PLAINTEXT,
    progress: Progress | None = None,
    poll_ms: int = 500,
) -> AsyncGenerator[RawRecord, None]:
    """Yield ``topic``'s records from the beginning up to its end when the read began.

    The end is the last stable offset of each partition (``read_committed``), so the read ends
    even while the worker keeps writing. ``progress`` hears (read, total) as the read goes on.
    """
    async with _session(bootstrap, security, warn) as (admin, consumer, relay):
        numbers = await _partitions(
            admin, topic, bootstrap, "check --topic / FRAUD_TOPIC and --bootstrap"
        )
        partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
        consumer.assign(partitions)
        begin = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        total = sum(end[tp] - begin[tp] for tp in partitions)
        await consumer.seek_to_beginning(*partitions)
        relay.muted = False
        pending = {tp for tp in partitions if end[tp] > begin[tp]}
        done = {tp: 0 for tp in partitions}
        if progress is not None:
            progress(0, total)
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=poll_ms)
            for part in sorted(batches, key=lambda tp: tp.partition):
                for message in batches[part]:
                    if message.offset < end[part]:
                        yield RawRecord(part.topic, part.partition, message.offset, message.value)
            for tp in list(pending):
                # Positions also move over transaction markers, which are never yielded.
                position = await consumer.position(tp)
                done[tp] = min(position, end[tp]) - begin[tp]
                if position >= end[tp]:
                    pending.discard(tp)
            if progress is not None:
                progress(sum(done.values()), total)


async def fetch_timestamps(
    bootstrap: str,
    topic: str,
    wanted: Iterable[tuple[int, int]],
    *,
    warn: Warn,
    security: KafkaSecurity = PLAINTEXT,
    poll_ms: int = 500,
    timeout_s: float = 30.0,
) -> dict[tuple[int, int], int]:
    """The Kafka timestamps (epoch ms) of the records at (partition, offset) in ``topic``.

    Records that are gone (retention, compaction) or past the end are left out of the answer.
    """
    by_partition: dict[int, set[int]] = {}
    for partition, offset in wanted:
        by_partition.setdefault(partition, set()).add(offset)
    found: dict[tuple[int, int], int] = {}
    if not by_partition:
        return found
    async with _session(bootstrap, security, warn) as (admin, consumer, _relay):
        existing = await _partitions(
            admin, topic, bootstrap, "check --transactions-topic / TRANSACTIONS_TOPIC"
        )
        partitions = [
            TopicPartition(topic, number) for number in sorted(by_partition) if number in existing
        ]
        if not partitions:
            return found
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        for tp in partitions:
            offsets = sorted(offset for offset in by_partition[tp.partition] if offset < end[tp])
            for offset in offsets:
                if (tp.partition, offset) in found:
                    continue  # read already, in the batch of an earlier offset
                consumer.seek(tp, offset)
                while await consumer.position(tp) <= offset < end[tp]:
                    if time.monotonic() > deadline:
                        return found
                    batch = await consumer.getmany(tp, timeout_ms=poll_ms)
                    for message in batch.get(tp, []):
                        if message.offset in by_partition[tp.partition]:
                            found[(tp.partition, message.offset)] = message.timestamp
        return found
