"""Topics the worker needs before it joins the consumer group.

Faust creates internal topics lazily, while it subscribes; on a fresh cluster the first
assignment can then miss a topic that the broker's metadata does not show yet ("Ignoring missing
topic"), and that topic stays unassigned until the next rebalance. So the worker checks the
input and output topics (the operator creates those) and creates its internal topics itself,
and waits until the metadata shows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from app.errors import FraudError, KafkaUnavailable
from app.settings import Settings
from kafka_security.failures import explain_refusal

log = logging.getLogger(__name__)


class TopicError(FraudError):
    """A topic is missing or has the wrong number of partitions."""


def changelog_topic(settings: Settings, table: str) -> str:
    return f"{settings.app_id}-{table}-changelog"  # Faust's naming of a table's changelog


async def ensure_topics(settings: Settings, tables: list[str], timeout: float = 60.0) -> None:
    # the input and the outputs are the operator's (their retention is a policy); without an
    # output topic every alert would wait on the broker's metadata for ever
    required = [settings.transactions_topic, settings.fraud_topic, settings.dlq_topic]
    internal = {settings.pairs_topic: {}, settings.ticks_topic: {"retention.ms": "3600000"}}
    for table in tables:
        internal[changelog_topic(settings, table)] = {"cleanup.policy": "compact"}
    deadline = time.monotonic() + timeout
    admin = await _admin_once_up(settings, deadline)
    try:
        created = False
        while True:
            found = await _partition_counts(admin)
            missing = [name for name in internal if name not in found]
            if not missing and all(name in found for name in required):
                break
            if missing and not created:
                await _create(admin, missing, internal, settings.partitions)
                created = True
            if time.monotonic() > deadline:
                absent = [n for n in [*required, *internal] if n not in found]
                raise TopicError(
                    f"topics {', '.join(absent)} do not exist on {settings.bootstrap}; create "
                    f"the input topic with {settings.partitions} partitions and the output "
                    "topics (scripts/kafka create-topics)"
                )
            await asyncio.sleep(0.2)
        if settings.control_topic not in found:  # one partition: every worker reads all of it
            config = {"cleanup.policy": "compact"}
            await _create(admin, [settings.control_topic], {settings.control_topic: config}, 1)
        # The input may have more (partitions added later are re-keyed: app.runtime.assignment).
        wrong = {name: found[name] for name in internal if found[name] != settings.partitions}
        if found[settings.transactions_topic] < settings.partitions:
            wrong[settings.transactions_topic] = found[settings.transactions_topic]
        if wrong:
            listing = ", ".join(f"{name} has {count}" for name, count in wrong.items())
            raise TopicError(
                f"TOPIC_PARTITIONS={settings.partitions} but {listing} partitions: "
                "set TOPIC_PARTITIONS to the input topic's partition count when it was created"
            )
    finally:
        await admin.close()


async def create_pipeline_topics(settings: Settings) -> dict[str, bool]:
    """Create the input, alert and dead-letter topics with TOPIC_PARTITIONS partitions and 3
    replicas (fewer with fewer brokers), unless they exist: {topic: created}. What the topics
    Job runs (``faust -A app create-topics``), with the same Kafka login as every other client.
    A topic that exists with another partition count is a :class:`TopicError`."""
    names = [settings.transactions_topic, settings.fraud_topic, settings.dlq_topic]
    admin = await _admin(settings)
    try:
        found = await _partition_counts(admin)
        missing = [name for name in names if name not in found]
        if missing:
            # aiokafka cannot ask for the broker's default: 3 copies, or one per broker if fewer
            cluster = await admin.describe_cluster()
            replicas = min(3, len(cluster["brokers"]))
            topics = [NewTopic(name, settings.partitions, replicas) for name in missing]
            with contextlib.suppress(TopicAlreadyExistsError):  # another run was faster
                await admin.create_topics(topics)
        deadline = time.monotonic() + 60
        while any(name not in found for name in names):
            if time.monotonic() > deadline:
                absent = ", ".join(name for name in names if name not in found)
                raise TopicError(f"topics {absent} were created but do not show on the broker")
            await asyncio.sleep(0.2)
            found = await _partition_counts(admin)
    finally:
        await admin.close()
    wrong = {name: found[name] for name in names if found[name] != settings.partitions}
    if wrong:
        listing = ", ".join(f"{name} has {count}" for name, count in wrong.items())
        raise TopicError(
            f"TOPIC_PARTITIONS={settings.partitions} but {listing} partitions: change the "
            "setting or the topic"
        )
    return {name: name in missing for name in names}


async def _admin_once_up(settings: Settings, deadline: float) -> AIOKafkaAdminClient:
    """An admin client, started once Kafka answers: a worker may start while it is briefly
    down (a broker restarting, or this worker restarted in place during the outage) and
    waits for it until ``deadline``; a refused login or certificate fails at once."""
    while True:
        try:
            return await _admin(settings)
        except KafkaUnavailable as exc:
            if exc.refused or time.monotonic() > deadline:
                raise
            log.warning("%s: trying again", exc)
            await asyncio.sleep(1.0)


async def _admin(settings: Settings) -> AIOKafkaAdminClient:
    """An admin client, started. Its start is the first connection to Kafka: a refused login or
    certificate shows there, as a :class:`KafkaUnavailable` that says which."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap, **settings.security.client_options()
    )
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        raise await kafka_unavailable(settings, exc) from None
    return admin


async def kafka_unavailable(settings: Settings, exc: BaseException) -> KafkaUnavailable:
    """The error for a client that could not start: the refused login or certificate if that
    was it (one line, without the password), else the connection failure."""
    refusal = await explain_refusal(settings.bootstrap, settings.security)
    if refusal:
        return KafkaUnavailable(refusal, refused=True)
    return KafkaUnavailable(f"cannot reach Kafka at {settings.bootstrap}: {exc}")


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    metadata = await admin.describe_topics()
    return {
        topic["topic"]: len(topic["partitions"])
        for topic in metadata
        if topic.get("error_code", 0) == 0
    }


async def _create(
    admin: AIOKafkaAdminClient,
    names: list[str],
    configs: dict[str, dict[str, str]],
    partitions: int,
) -> None:
    topics = [NewTopic(name, partitions, 1, topic_configs=configs[name]) for name in names]
    with contextlib.suppress(TopicAlreadyExistsError):  # another worker was faster
        await admin.create_topics(topics)
