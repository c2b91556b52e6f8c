"""Exactly-once: each batch of a consumed partition is one Kafka transaction.

With PROCESSING_GUARANTEE=exactly_once every partition the worker consumes (input, re-keyed,
ticks) has a transactional producer of its own, its ``transactional.id`` derived from the app
and the partition, as in Kafka Streams' first exactly-once design. It is started
(InitProducerId) when the partition is assigned, before the worker reads the partition's
committed offset: the broker aborts the previous owner's open transaction and fences it, so a
worker frozen or cut off past the session timeout cannot write once it wakes.

A batch's transaction holds everything the batch causes: alerts, dead letters, re-keyed records,
watermark announcements, the changelog record batches, and the batch's next input offset
(``send_offsets_to_transaction``). The worker's consumer reads ``read_committed``
(app.runtime.consumer), so nothing of an aborted or fenced transaction is ever read back: not
on the re-keyed topic, not in a changelog restore.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import IllegalOperation, KafkaError
from faust.types import TP

from app.errors import TransactionFailed
from app.runtime.producer import DeliveringProducer

log = logging.getLogger(__name__)


class Transactions:
    def __init__(self, app_id: str, producer: Callable[[], DeliveringProducer]) -> None:
        self.app_id = app_id  # also the consumer group
        self.producer = producer  # the app's: its sends go to the transaction in hand
        self.producers: dict[TP, AIOKafkaProducer] = {}

    def transactional_id(self, tp: TP) -> str:
        return f"{self.app_id}-{tp.topic}-{tp.partition}"

    async def assign(self, tps: Iterable[TP]) -> None:
        """Start (and so fence the previous owner of) a producer for each partition not held."""
        new = [tp for tp in tps if tp not in self.producers]
        started = await asyncio.gather(*(self._start(tp) for tp in new))
        self.producers.update(zip(new, started, strict=True))

    async def revoke(self, tps: Iterable[TP]) -> None:
        """Stop the producers of partitions lost: the next owner's start fences them anyway."""
        gone = [self.producers.pop(tp) for tp in tps if tp in self.producers]
        await asyncio.gather(*(producer.stop() for producer in gone), return_exceptions=True)

    async def stop(self) -> None:
        await self.revoke(list(self.producers))

    @contextlib.asynccontextmanager
    async def batch(self, tp: TP, next_offset: int) -> AsyncIterator[None]:
        """One transaction around a batch of ``tp``: what the app's producer sends meanwhile
        goes into it, and it commits with ``next_offset`` as ``tp``'s offset; a batch that fails
        aborts it."""
        producer = self.producers.get(tp)
        if producer is None:  # assigned while the producers of its rebalance started
            await self.assign([tp])
            producer = self.producers[tp]
        app_producer = self.producer()
        try:
            await producer.begin_transaction()
            app_producer.transaction = producer
            try:
                yield
                await producer.send_offsets_to_transaction(
                    {TopicPartition(tp.topic, tp.partition): next_offset}, self.app_id
                )
                await producer.commit_transaction()
            except BaseException:
                with contextlib.suppress(Exception):  # fenced: the broker aborted it already
                    await producer.abort_transaction()
                raise
            finally:
                app_producer.transaction = None
        except (KafkaError, IllegalOperation) as error:  # fenced, or a send in it failed
            raise TransactionFailed(f"{tp.topic}/{tp.partition}: {error!r}") from error

    async def _start(self, tp: TP) -> AIOKafkaProducer:
        # the app producer's settings and login (Faust's), idempotent, acks from all replicas
        producer: AIOKafkaProducer = self.producer()._new_producer(
            transactional_id=self.transactional_id(tp)
        )
        await producer.start()  # InitProducerId: fences the previous owner
        return producer
