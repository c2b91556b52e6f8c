"""Where generated records go: Kafka (the `transactions` topic) or standard output.

The send loop in `generator.runner` calls `send` per record without waiting for delivery;
`flush` then waits for every acknowledgement, so a run that ends cleanly has lost nothing.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import BinaryIO, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder

from generator.errors import BrokerError
from generator.stream import Record
from kafka_security import PLAINTEXT, KafkaSecurity
from kafka_security.failures import explain_refusal

TOPIC_WAIT_SECONDS = 15.0
# Big batches are what makes `--rate 0` fast; the broker's default message limit is 1 MiB.
MAX_BATCH_BYTES = 512 * 1024
LINGER_MS = 5
_KEY_CACHE_SIZE = 1 << 20  # partition of each key seen; pairs repeat, murmur2 is slow Python


class Sink(Protocol):
    """A destination for records; `acknowledged` counts records known to be delivered."""

    acknowledged: int

    def describe(self) -> str: ...

    async def start(self) -> None: ...

    async def send(self, record: Record) -> None: ...

    async def flush(self) -> None: ...

    async def stop(self) -> None: ...


class SinkClosed(Exception):
    """The destination went away on purpose (e.g. `| head` closed the pipe): stop quietly."""


class StdoutSink:
    """Writes each value as one line, for piping (`--stdout`); keys are not written."""

    _BUFFERED_LINES = 2048

    _MAX_DELAY_SECONDS = 0.1  # a slow paced run still reaches the reader promptly

    def __init__(self, out: BinaryIO | None = None) -> None:
        self._out = out if out is not None else sys.stdout.buffer
        self._lines: list[bytes] = []
        self._last_write = time.monotonic()
        self.acknowledged = 0

    def describe(self) -> str:
        return "stdout"

    async def start(self) -> None:
        return None

    async def send(self, record: Record) -> None:
        self._lines.append(record.value)
        if (
            len(self._lines) >= self._BUFFERED_LINES
            or time.monotonic() - self._last_write >= self._MAX_DELAY_SECONDS
        ):
            self._write()

    async def flush(self) -> None:
        self._write()

    async def stop(self) -> None:
        self._write()

    def _write(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        self._last_write = time.monotonic()
        try:
            self._out.write(b"\n".join(lines) + b"\n")
            self._out.flush()
        except BrokenPipeError:
            # Point stdout at /dev/null so the interpreter's final flush does not fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._out.fileno())
            os.close(devnull)
            raise SinkClosed("stdout was closed by the reader") from None
        self.acknowledged += len(lines)


class KafkaSink:
    """Produces to one topic with acks=all and idempotence.

    Paced runs hand each record to the producer, which batches them for `LINGER_MS`. With
    `bulk=True` (`--rate 0`) the sink fills one batch per partition itself and hands over
    whole batches: the producer's per-record path costs more than generating a record.
    Either way a keyed record lands on the partition Kafka's Java client would choose.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        bulk: bool = False,
        client_id: str = "fraud-generator",
        security: KafkaSecurity = PLAINTEXT,
        producer_factory: Callable[..., AIOKafkaProducer] = AIOKafkaProducer,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self._producer_factory = producer_factory
        self.topic = topic
        self.bulk = bulk
        self.acknowledged = 0
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._error: BaseException | None = None
        self._partitions: list[int] = []
        self._partition_of_key: dict[bytes, int] = {}
        self._batches: dict[int, BatchBuilder] = {}  # the batch being filled, per partition
        self._sticky = 0  # unkeyed bulk records fill one partition's batch, then the next

    def describe(self) -> str:
        return f"Kafka topic {self.topic!r} at {self.bootstrap}"

    async def start(self) -> None:
        producer = self._producer_factory(
            bootstrap_servers=self.bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=LINGER_MS,
            max_batch_size=MAX_BATCH_BYTES,
            **self.security.client_options(),
        )
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            refusal = await explain_refusal(self.bootstrap, self.security)
            raise BrokerError(
                refusal
                or f"cannot reach Kafka at {self.bootstrap} ({_one_line(exc)}); is the broker"
                " running? Set --bootstrap or KAFKA_BOOTSTRAP"
            ) from None
        try:
            partitions = await asyncio.wait_for(
                producer.partitions_for(self.topic), TOPIC_WAIT_SECONDS
            )
        except (UnknownTopicOrPartitionError, TimeoutError):
            await producer.stop()
            raise BrokerError(
                f"topic {self.topic!r} does not exist on Kafka at {self.bootstrap}; create it"
                " first (the generator does not create topics) or set --topic"
            ) from None
        self._partitions = sorted(partitions)
        self._producer = producer

    async def send(self, record: Record) -> None:
        if self._error is not None:
            raise self._delivery_error()
        producer = self._producer
        if producer is None:
            raise RuntimeError("KafkaSink.send before start")
        try:
            if self.bulk:
                await self._append(producer, record)
            else:
                # Kafka's record timestamp stays the send time on purpose: stamping it with a
                # simulated 2017 event time would make time-based retention delete it at once.
                delivery = await producer.send(self.topic, record.value, record.key)
                delivery.add_done_callback(self._on_record_delivered)
        except KafkaError as exc:
            self._error = exc
            raise self._delivery_error() from None

    async def _append(self, producer: AIOKafkaProducer, record: Record) -> None:
        partition = self._partition(record.key)
        if self._add_to_batch(producer, partition, record):
            return
        await self._submit(producer, partition)
        if record.key is None:
            # Sticky, as Kafka's own partitioner for unkeyed records: move on when a batch fills.
            self._sticky = (self._sticky + 1) % len(self._partitions)
            partition = self._partition(None)
            if self._add_to_batch(producer, partition, record):
                return
            await self._submit(producer, partition)
        if not self._add_to_batch(producer, partition, record):
            raise BrokerError(f"a record of {len(record.value)} bytes does not fit in a batch")

    def _add_to_batch(self, producer: AIOKafkaProducer, partition: int, record: Record) -> bool:
        """Append to the partition's open batch; False when that batch is full."""
        batch = self._batches.get(partition)
        if batch is None:
            batch = self._batches[partition] = producer.create_batch()
        return batch.append(timestamp=None, key=record.key, value=record.value) is not None

    def _partition(self, key: bytes | None) -> int:
        if key is None:
            return self._partitions[self._sticky]
        partition = self._partition_of_key.get(key)
        if partition is None:
            if len(self._partition_of_key) >= _KEY_CACHE_SIZE:
                self._partition_of_key.clear()
            # The Java client's rule for keyed records, so keys land where Flink/Faust expect.
            index = (murmur2(key) & 0x7FFFFFFF) % len(self._partitions)
            partition = self._partition_of_key[key] = self._partitions[index]
        return partition

    async def _submit(self, producer: AIOKafkaProducer, partition: int) -> None:
        batch = self._batches.pop(partition)
        records = batch.record_count()
        if records == 0:
            return
        delivery = await producer.send_batch(batch, self.topic, partition=partition)
        delivery.add_done_callback(lambda done: self._on_batch_delivered(done, records))

    def _on_record_delivered(self, delivery: asyncio.Future[object]) -> None:
        self._on_batch_delivered(delivery, 1)

    def _on_batch_delivered(self, delivery: asyncio.Future[object], records: int) -> None:
        if delivery.cancelled():
            return
        error = delivery.exception()
        if error is None:
            self.acknowledged += records
        elif self._error is None:
            self._error = error

    async def flush(self) -> None:
        producer = self._producer
        if producer is not None:
            try:
                for partition in list(self._batches):
                    await self._submit(producer, partition)
                await producer.flush()
            except KafkaError as exc:
                self._error = self._error or exc
        if self._error is not None:
            raise self._delivery_error()

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    def _delivery_error(self) -> BrokerError:
        return BrokerError(
            f"Kafka at {self.bootstrap} did not accept records for topic {self.topic!r}"
            f" ({_one_line(self._error)}); check the broker and the topic"
        )


def _one_line(error: BaseException | None) -> str:
    text = (str(error) or type(error).__name__) if error is not None else "unknown error"
    return " ".join(text.split())[:300]
