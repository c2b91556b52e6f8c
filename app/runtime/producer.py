"""Faust's producer, which also sends straight to Kafka, and whose flush waits for every record
handed to it.

The detector's records (alerts, dead letters, re-keyed transactions, watermark announcements, the
table's changelog) go to aiokafka directly: ``send_record`` one at a time, ``send_batch`` as one
record batch, instead of a Faust ``FutureMessage`` each and a hop through Faust's buffer. Each is
kept until the broker acknowledges or refuses it; a refusal is reported as Faust reports its own
(app.app.SendFailures then stops the worker).

The consumer flushes the producer before it commits offsets: that is what makes the table's
changelog a prefix of the committed input. But Faust's flush gives up on its own buffer after
0.1 s without a send (``ProducerBuffer.flush_atmost``), and under load a send waits longer than
that for room in aiokafka's batches. The consumer then commits offsets past table changelog
records still in that buffer, and a kill -9 loses them: seen in the kill -9 fault test, a
changelog partition held 68 records while the committed input of its partition was some 600
transactions further, and the pairs of those transactions never alerted. This producer keeps
every record given to ``send_soon`` (table changelogs, dead letters, ticks) until the broker
acknowledges or refuses it (app.app.SendFailures then stops the worker), and its flush waits for
them.

Under exactly-once it also makes the transactional producers (app.runtime.transactions), whose
transactions survive a broker restart (:class:`CoordinatorRetryingSender`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.sender import Sender
from faust.transport.drivers import aiokafka as driver
from faust.types import FutureMessage


class DeliveringProducer(driver.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unacknowledged: set[asyncio.Future[Any]] = set()
        # exactly-once: the transactional producer of the batch in hand (app.runtime.transactions)
        self.transaction: Any | None = None

    def _new_producer(self, transactional_id: str | None = None) -> Any:
        """Faust's, with the settings a transactional producer needs when it is one."""
        if transactional_id is None:
            return super()._new_producer()
        settings = {**self._settings_default(), **self._settings_auth()}
        settings.update(acks="all", enable_idempotence=True, transactional_id=transactional_id)
        # A batch's transaction starts right after the last one of its partition committed,
        # which the coordinator may still be completing (CONCURRENT_TRANSACTIONS, retried after
        # the backoff; Java's client retries that one after 20 ms too); and a transaction sends
        # as soon as it commits, so lingering only delays its commit. Alert latency at 1,000
        # tx/s, p50: 812 ms with aiokafka's 100 ms backoff and the app's 5 ms linger, 251 ms.
        settings.update(retry_backoff_ms=20, linger_ms=0)
        return TransactionalProducer(**settings)

    def send_soon(self, fut: FutureMessage) -> None:
        self.unacknowledged.add(fut)
        fut.add_done_callback(self.unacknowledged.discard)
        super().send_soon(fut)

    async def send_record(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
    ) -> asyncio.Future[Any]:
        """Hand one record to aiokafka; returns the broker's acknowledgement, not waited for."""
        kafka: Any = self.transaction or self._producer  # aiokafka's, made at the start
        sent: asyncio.Future[Any] = await kafka.send(
            topic, value=value, key=key, partition=partition
        )
        self._keep(sent, kafka)
        return sent

    async def send_batch(
        self,
        topic: str,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        *,
        timestamp_ms: int,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> list[tuple[asyncio.Future[Any], int]]:
        """Hand ``records`` (key, value) to aiokafka as record batches of one partition, in
        order; returns each batch's acknowledgement (its result names the batch's first
        offset), not waited for, with its number of records."""
        producer: Any = self.transaction or self._producer
        sent: list[tuple[asyncio.Future[Any], int]] = []
        builder = producer.create_batch()
        for key, value in records:
            while (
                builder.append(timestamp=timestamp_ms, key=key, value=value, headers=list(headers))
                is None
            ):  # full: the first record of a batch always fits
                count = builder.record_count()
                sent.append((await producer.send_batch(builder, topic, partition=partition), count))
                builder = producer.create_batch()
        if builder.record_count():
            count = builder.record_count()
            sent.append((await producer.send_batch(builder, topic, partition=partition), count))
        for batch, _ in sent:
            self._keep(batch, producer)
        return sent

    def _keep(self, sent: asyncio.Future[Any], producer: Any) -> None:
        self.unacknowledged.add(sent)
        if producer is self.transaction:  # a failure fails its transaction, which says so
            sent.add_done_callback(self.unacknowledged.discard)
        else:
            sent.add_done_callback(self._acknowledged)

    def _acknowledged(self, sent: asyncio.Future[Any]) -> None:
        self.unacknowledged.discard(sent)
        failure = None if sent.cancelled() else sent.exception()
        if failure is not None:
            self.app.sensors.on_send_error(self, failure, None)

    async def flush(self) -> None:
        """Faust's flush, then a wait for every record handed over before it (bounded by the
        request timeout, after which aiokafka has failed what it could not deliver)."""
        handed = set(self.unacknowledged)
        await super().flush()
        if handed and not self.should_stop:  # stopping, its buffer may send nothing more
            await asyncio.wait(handed, timeout=self.request_timeout)


class TransactionalProducer(AIOKafkaProducer):  # type: ignore[misc]
    """aiokafka's producer, with a sender that looks for the transaction coordinator again when
    the connection of a lookup closes (:class:`CoordinatorRetryingSender`)."""

    _sender: Any

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        made: Any = self._sender
        self._sender = CoordinatorRetryingSender(
            made.client,
            acks=made._acks,
            txn_manager=made._txn_manager,
            message_accumulator=made._message_accumulator,
            retry_backoff_ms=made._retry_backoff * 1000,
            request_timeout_ms=made._request_timeout_ms,
        )


class CoordinatorRetryingSender(Sender):  # type: ignore[misc]
    """aiokafka's sender, except for one error. A coordinator lookup whose connection closes
    (the broker restarting) ends aiokafka's sender with "Unexpected error during batch
    delivery", which fails the transaction in hand, while a lookup that finds the broker not
    ready is retried. This one retries both, up to the request timeout, as the Java client
    retries a request whose connection closed. Under exactly-once a broker restart cost a
    restart in place with the tables rebuilt (39 s in the broker restart fault test), where
    at-least-once took 4.5 s."""

    async def _find_coordinator(self, coordinator_type: Any, coordinator_key: str) -> Any:
        deadline = time.monotonic() + self._request_timeout_ms / 1000
        while True:
            try:
                return await super()._find_coordinator(coordinator_type, coordinator_key)
            except KafkaError as error:  # aiokafka wraps what it does not retry
                cause = error.__cause__
                retriable = isinstance(cause, KafkaError) and cause.retriable
                if not retriable or time.monotonic() >= deadline:
                    raise
            await self.client.force_metadata_update()
            await asyncio.sleep(self._retry_backoff)


class Topic:
    """A topic the detector writes to, through the app's producer (``send_record``)."""

    def __init__(self, producer: Callable[[], DeliveringProducer], name: str) -> None:
        self.producer = producer  # the app's, made at its first use
        self.name = name

    async def send(
        self, *, key: bytes | None = None, value: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[Any]:
        return await self.producer().send_record(
            self.name, key=key, value=value, partition=partition
        )
