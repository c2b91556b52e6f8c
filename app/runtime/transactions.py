"""Exactly-once: each batch of a consumed partition is one Kafka transaction.

With PROCESSING_GUARANTEE=exactly_once every partition the worker consumes (input, re-keyed,
ticks) has a transactional producer of its own, its ``transactional.id`` derived from the app
and the partition, as in Kafka Streams' first exactly-once design. It is started
(InitProducerId) when the partition is assigned, before Faust's recovery reads the changelogs'
end offsets and before the partition's committed offset is read: the broker aborts the previous
owner's open transaction and fences it, so a worker frozen or cut off past the session timeout
cannot write once it wakes, not even between those two reads.

A batch's transaction holds everything the batch causes: alerts, dead letters, re-keyed records,
watermark announcements, the changelog record batches, and the batch's next input offset
(``send_offsets_to_transaction``). The worker's consumer reads ``read_committed``
(app.runtime.consumer), so nothing of an aborted or fenced transaction is ever read back: not
on the re-keyed topic, not in a changelog restore.

A batch's commit runs on while the next batches are processed: a fetch holds batches of several
partitions, and committed one after the other, each waiting for the last, their transactions
made an alert wait for every commit before its own. Batches that write the same table partition
stay in order (:meth:`Transactions.batch`), and a rebalance or a stop waits for every commit
(``settle``) before the partitions go.
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
        # a partition's producer, started or starting: an assignment and a batch, or two
        # assignments (Faust seeks again after a recovery), ask for it meanwhile, and a second
        # producer of the same transactional.id would fence the first
        self.producers: dict[TP, asyncio.Future[AIOKafkaProducer]] = {}
        # per partition number: the commit of its last batch, running on (:meth:`batch`)
        self.committing: dict[int, asyncio.Future[None]] = {}
        self.failed = False  # a transaction failed: the local tables are ahead of Kafka

    def transactional_id(self, tp: TP) -> str:
        return f"{self.app_id}-{tp.topic}-{tp.partition}"

    async def assign(self, tps: Iterable[TP]) -> None:
        """Start (and so fence the previous owner of) a producer for each partition not held."""
        await asyncio.gather(*(self._producer(tp) for tp in tps))

    async def revoke(self, tps: Iterable[TP]) -> None:
        """Stop the producers of partitions lost, once their commits ended: the next owner's
        start fences them anyway."""
        await self.settle()
        gone = [self.producers.pop(tp) for tp in tps if tp in self.producers]
        started = await asyncio.gather(*gone, return_exceptions=True)
        await asyncio.gather(
            *(producer.stop() for producer in started if not isinstance(producer, BaseException)),
            return_exceptions=True,
        )

    async def stop(self) -> None:
        await self.revoke(list(self.producers))

    @contextlib.asynccontextmanager
    async def batch(
        self, tp: TP, next_offset: int, failed: Callable[[TransactionFailed], None]
    ) -> AsyncIterator[None]:
        """One transaction around a batch of ``tp``: what the app's producer sends meanwhile
        goes into it; a batch that fails aborts it (TransactionFailed if Kafka failed it).

        Its commit, with ``next_offset`` as ``tp``'s offset, runs on while the next batches are
        processed, and one that fails is handed to ``failed``. The next batch of a partition of
        the same number (input, re-keyed or ticks: all three write that table partition) begins
        after it: a changelog must hold its records in the order the worker applied them, and
        two transactions committing at once could land in either order."""
        await self.settle(tp.partition)
        app_producer = self.producer()
        producer: AIOKafkaProducer | None = None
        try:
            producer = await self._producer(tp)
            await producer.begin_transaction()
            app_producer.transaction = producer
            try:
                yield
            except BaseException:
                with contextlib.suppress(Exception):  # fenced: the broker aborted it already
                    await producer.abort_transaction()
                raise
            finally:
                app_producer.transaction = None
        except (KafkaError, IllegalOperation) as error:  # fenced, or a send in it failed
            failure = self._failure(tp, producer, error)
            raise failure from failure.__cause__
        self.committing[tp.partition] = asyncio.ensure_future(
            self._commit(tp, producer, next_offset, failed)
        )

    async def settle(self, partition: int | None = None) -> None:
        """Wait for the commits running on: of ``partition``'s batches, or of all."""
        running = (
            self.committing.values() if partition is None else [self.committing.get(partition)]
        )
        await asyncio.gather(*(c for c in running if c is not None), return_exceptions=True)

    async def _commit(
        self,
        tp: TP,
        producer: AIOKafkaProducer,
        next_offset: int,
        failed: Callable[[TransactionFailed], None],
    ) -> None:
        try:
            await producer.send_offsets_to_transaction(
                {TopicPartition(tp.topic, tp.partition): next_offset}, self.app_id
            )
            await producer.commit_transaction()
        except Exception as error:  # fenced, or a send failed; whatever it is, it is told
            with contextlib.suppress(Exception):  # fenced: the broker aborted it already
                await producer.abort_transaction()
            failed(self._failure(tp, producer, error))

    def _failure(
        self, tp: TP, producer: AIOKafkaProducer | None, error: BaseException
    ) -> TransactionFailed:
        self.failed = True  # the local tables hold a batch whose transaction did not commit
        cause = ended_by(producer) or error
        failure = TransactionFailed(f"{tp.topic}/{tp.partition}: {cause!r}")
        failure.__cause__ = cause
        return failure

    async def _producer(self, tp: TP) -> AIOKafkaProducer:
        started = self.producers.get(tp)
        if started is None:
            started = self.producers[tp] = asyncio.ensure_future(self._start(tp))
        try:
            return await asyncio.shield(started)
        except Exception:
            if self.producers.get(tp) is started:
                del self.producers[tp]  # the next batch or assignment starts it again
            raise

    async def _start(self, tp: TP) -> AIOKafkaProducer:
        # the app producer's settings and login (Faust's), idempotent, acks from all replicas
        producer: AIOKafkaProducer = self.producer()._new_producer(
            transactional_id=self.transactional_id(tp)
        )
        try:
            await producer.start()  # InitProducerId: fences the previous owner
        except BaseException:
            await producer.stop()
            raise
        return producer


def ended_by(producer: AIOKafkaProducer | None) -> BaseException | None:
    """The error that ended the producer's transaction in its background sender (a fenced
    producer is told so by the broker's answer to a send, then refuses the next one as "not in
    transaction"), or None."""
    manager = getattr(producer, "_txn_manager", None)  # pinned by a contract test
    waiter = getattr(manager, "_transaction_waiter", None)
    if waiter is None or not waiter.done() or waiter.cancelled():
        return None
    error: BaseException | None = waiter.exception()
    return error
