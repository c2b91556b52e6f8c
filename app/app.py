"""The Faust application object, built from the settings; ``faust -A app`` finds it here."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any, cast

import faust
import mode.loop
from faust.types.auth import CredentialsT

from app.errors import KafkaUnavailable, SettingsError
from app.runtime.assignment import InputAssignor
from app.runtime.consumer import BatchConsumer
from app.runtime.fencing import FencedTable
from app.runtime.localstate import mark_clean_stop, open_local_state, undelivered_batches
from app.runtime.loopwatch import watch_loop
from app.runtime.producer import DeliveringProducer
from app.runtime.transactions import Transactions
from app.settings import Settings
from app.topics import TopicError, ensure_topics
from kafka_security import KafkaSecurity

# Faust picks its event loop from --loop or F_LOOP before importing us; the policy set here
# makes the worker run on uvloop with no flag, before any loop is created.
mode.loop.use("uvloop")

try:
    settings = Settings.from_env()
except SettingsError as exc:  # one line for a person, not a traceback from inside Faust
    print(f"fraud-detector: bad setting: {exc}", file=sys.stderr)
    raise SystemExit(2) from None


class SendFailures(faust.Sensor):
    """Faust reports a record it could not deliver (after the producer's retries, or refused)
    here and otherwise goes on: a changelog record lost that way is a hole in the table that
    later commits would hide. The worker stops as crashed instead, at the first one: nothing
    after it is committed, and the next start rebuilds the tables from the changelog."""

    def __init__(self, app: faust.App) -> None:
        super().__init__()
        self.app = app
        self.failed = 0
        self.crashing: asyncio.Future[None] | None = None

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        self.failed += 1
        if self.failed == 1:
            self.app.log.error("a record was not delivered to Kafka (%r): stopping the worker", exc)
            self.crashing = asyncio.ensure_future(self.app.crash(exc))


class DetectorApp(faust.App):
    _kafka_producer: Any = None  # the aiokafka producer, kept at the stop (on_shutdown)
    send_failures: SendFailures
    transactions: Transactions | None = None  # exactly-once only

    async def on_first_start(self) -> None:
        open_local_state(settings.data_dir, self.conf.tabledir)  # before any table is opened
        await super().on_first_start()
        self.log.info("Kafka at %s, %s", settings.bootstrap, settings.security.describe())
        try:  # before the consumer joins the group: the first assignment must see every topic
            await ensure_topics(settings, [table.name for table in self.tables.values()])
        except (KafkaUnavailable, TopicError) as exc:
            # the process's own stderr: Faust's worker logs what is written to sys.stderr
            print(f"fraud-detector: {exc}", file=sys.__stderr__, flush=True)
            os._exit(2)  # nothing has started yet: a clean one-line stop, not a traceback
        from app.agents import (
            control,
            detector,
            end_restores_at_markers,
            heartbeat,
            take,
            transactions,
            watch_progress,
        )

        consumer = cast(BatchConsumer, self.consumer)
        consumer.handler = take  # the input reaches the detector a batch per partition
        consumer.batched_topics = frozenset(
            (settings.transactions_topic, settings.pairs_topic, settings.ticks_topic)
        )
        if transactions is not None:  # exactly-once: each batch one Kafka transaction
            consumer.before_recovery = transactions.assign
            consumer.settle = transactions.settle
            self.transactions = transactions
            self.add_future(end_restores_at_markers())

        await control.catch_up()  # the threshold in force, before any input is processed
        self.add_future(heartbeat())
        watch_loop(lambda: detector.last_beat, lambda: self.should_stop)  # a thread
        self.add_future(watch_progress())

    def _new_producer(self) -> Any:
        # Faust's own, with a flush that waits for every record (app.runtime.producer)
        return DeliveringProducer(self.transport, loop=self.loop, beacon=self.beacon)

    def _new_transport(self) -> Any:
        # Faust's own, whose consumer hands the input over in batches (app.runtime.consumer)
        transport = super()._new_transport()
        transport.Consumer = BatchConsumer  # type: ignore[misc]
        # exactly-once: the batches' transactions commit (app.runtime.transactions)
        BatchConsumer.transactional = settings.exactly_once
        return transport

    async def on_stop(self) -> None:
        """The stop begins: the Kafka producer is kept, to see at the end what it delivered,
        and the stop gets STOP_TIMEOUT to end."""
        self._kafka_producer = getattr(self._producer, "_producer", None)
        deadline = threading.Timer(settings.stop_timeout_s, self._stop_overdue)
        deadline.daemon = True  # a stop that ends in time leaves it behind
        deadline.start()
        await super().on_stop()

    def _stop_overdue(self) -> None:
        """The stop waits for Kafka (the producer's flush, the commit), which may be unreachable
        for longer than the pod's grace period: Faust's producer waits up to 20 minutes for a
        record. The worker exits without the clean-stop mark, so the next start rebuilds its
        tables from the changelog and processes again what was not committed: nothing is lost."""
        records = len(cast(DeliveringProducer, self.producer).unacknowledged)
        limit = settings.stop_timeout_s
        print(
            f"fraud-detector: the stop took more than STOP_TIMEOUT ({limit:.0f}s), Kafka "
            f"unreachable? {records} records not delivered: exiting; the next start rebuilds "
            "the local tables from the changelog",
            file=sys.__stderr__,
            flush=True,
        )
        os._exit(1)

    async def on_shutdown(self) -> None:
        """After every child service stopped, the producer flushed (changelog delivered)."""
        await super().on_shutdown()
        if self.transactions is not None:
            await self.transactions.stop()
        if self._crashed.is_set() or self.send_failures.failed:  # a crash never gets here
            return
        if self.transactions is not None and self.transactions.failed:
            # a transaction failed while the worker stopped (no restart then): its batch is in
            # the local tables and not in Kafka
            return
        batches = undelivered_batches(self._kafka_producer)
        records = len(cast(DeliveringProducer, self.producer).unacknowledged)  # sent or not
        if batches or records:  # Kafka unreachable at the stop: the tables are ahead of it
            self.log.warning(
                "%d records (%d batches) were not delivered at the stop: the local tables will "
                "be rebuilt from the changelog at the next start",
                records,
                batches,
            )
            return
        mark_clean_stop(settings.data_dir)


def broker_credentials(security: KafkaSecurity) -> CredentialsT | None:
    """The same TLS context (with the client certificate, if any) and login as every other
    client's, in Faust's terms: Faust hands them to each consumer and producer it makes
    (``credentials_to_aiokafka_auth``)."""
    if security.protocol == "SASL_SSL" and security.token is not None:
        return faust.OAuthCredentials(oauth_cb=security.token, ssl_context=security.ssl_context)
    if security.protocol == "SASL_SSL" and security.password is not None:
        return faust.SASLCredentials(
            username=security.username,
            password=security.password.reveal(),
            mechanism=security.mechanism,
            ssl_context=security.ssl_context,
        )
    if security.ssl_context is not None:
        return faust.SSLCredentials(security.ssl_context)
    return None


InputAssignor.configure(settings)
app = DetectorApp(
    settings.app_id,
    broker=settings.broker_url,
    broker_credentials=broker_credentials(settings.security),
    store=settings.store,
    datadir=str(settings.data_dir),
    # at-least-once: changelog records name their writer, a restore drops a replaced one's
    # (app.runtime.fencing); exactly-once: the broker fences it (app.runtime.transactions)
    Table=faust.Table if settings.exactly_once else FencedTable,
    topic_partitions=settings.partitions,
    table_standby_replicas=settings.standby_replicas,
    # Faust's settings come from here only: its own environment names overlap ours, and
    # PROCESSING_GUARANTEE would turn on Faust's transactions, which can only write to the
    # partitions the worker consumes; exactly-once is the project's (app.runtime.transactions)
    env={},
    web_host=settings.web_host,
    web_port=settings.web_port,
    web_bind=settings.web_bind,
    PartitionAssignor=InputAssignor,  # partitions added to the input (app.runtime.assignment)
    consumer_metadata_max_age_ms=int(settings.metadata_max_age_s * 1000),
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    producer_linger_ms=5,  # changelog and alerts: one produce request per batch, not per record
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=settings.heartbeat_interval_s,
    key_serializer="raw",
    value_serializer="raw",
    autodiscover=["app.commands"],  # the operator commands (faust -A app pair|top|...)
)

app.send_failures = SendFailures(app)
app.sensors.add(app.send_failures)

# Registers the agents, tables and timers on the app.
from app import agents, views  # noqa: E402, F401
