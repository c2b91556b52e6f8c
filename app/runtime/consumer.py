"""Faust's consumer, which hands the input to the detector a batch per partition and commits
what the detector processed.

Faust's fetch loop hands each record to its agent's stream one at a time, through four tasks
made and cancelled per record (``Service.wait_first``), a queue and the stream's checks; the
stream drops records when the group changes under it, and the offsets to commit are rebuilt from
per-record acknowledgements and the gaps the loop saw. This loop hands what one fetch returned for
one input partition to the detector as one batch and awaits it (consume, process, commit, as in
Kafka Streams and Quix Streams). A partition's read offset moves only past records handed over,
and its offset to commit only past a batch the detector finished: nothing between the fetch and
the detector drops a record. A rebalance waits for the batch in hand, and the records fetched
and not handed over are read again from the committed offsets at its end
(``Recovery`` -> ``perform_seek``). Changelog records (table recovery, standbys) take Faust's
own per-record path, and stop at the first record a rebalance drops: the next recovery seeks
the partition to where it restores from, and reads the rest from there.

The seek at the end of a rebalance (``ConsumerThread._seek_to_committed``) seeks every assigned
partition in one step of the consumer's thread: to its committed offset, or, never committed, to
its beginning, where ``auto_offset_reset=earliest`` would have read it from (aiokafka's own
seek leaves such a partition where the dropped records left it). No batch of an assignment is
handed over before that seek.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from faust.transport.drivers import aiokafka as driver
from faust.types import TP

# the detector's step: one partition's records, oldest first; True if it processed them all
Handler = Callable[[TP, Sequence[Any]], Awaitable[bool]]

FETCH_MAX_WAIT_MS_EXACTLY_ONCE = 100  # how long the broker may hold a read_committed fetch


class BatchConsumer(driver.Consumer):
    handler: Handler | None = None  # set by the wiring (app.agents.take)
    batched_topics: frozenset[str] = frozenset()  # the input topics handed over in batches
    # exactly-once (app.runtime.transactions): each batch's transaction commits its offset, read
    # only what transactions committed, and start each assigned partition's producer (fencing its
    # previous owner) before the assignment's recovery reads the changelogs' end offsets
    transactional = False
    before_recovery: Callable[[set[TP]], Awaitable[None]] | None = None
    # exactly-once: waits for the commits of batches handed over, which run on after them
    settle: Callable[[], Awaitable[None]] | None = None

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.processed: dict[TP, int] = {}  # per input partition: the offset to commit next
        self.in_hand: asyncio.Future[bool] | None = None  # the batch the detector works on
        self.seeks = 0  # seeks to the committed offsets so far (a fetch made before one is stale)
        self.sought_generation: int | None = None  # the group generation of the last of them

    async def _drain_messages(self, fetcher: Any) -> None:
        stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        read_offset = self._read_offset
        try:
            while not (stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(timeout=1.0)
                if not records or self.should_stop:
                    continue
                generation, seeks = self.app.consumer_generation_id, self.seeks
                for tp, fetched in records.items():
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        break  # a rebalance began: what is left here is read again after it
                    if self.seeks != seeks:
                        # Faust sought the committed offsets meanwhile (its recovery ended during
                        # the last batch): the rest of this fetch was read from the positions
                        # before, which may lie past the committed offset, and would leave the
                        # records between unread (found by the nemesis: 32 re-keyed records
                        # never applied). It is read again from where the seek put each partition.
                        break
                    if active is not None and tp not in active:
                        continue
                    batched = tp.topic in self.batched_topics
                    if batched and self.sought_generation != generation:
                        # Faust resumes an assignment's partitions before it seeks them to their
                        # committed offsets (when its recovery ends), and the positions before
                        # come from offsets read at the assignment, which may predate the last
                        # transaction of the partition's previous owner: processed, its batch
                        # would be processed twice (found by the nemesis under exactly-once:
                        # alerts in two committed transactions). The seek reads them again.
                        continue
                    batch = _from(
                        fetched,
                        _later(read_offset.get(tp), self.processed.get(tp) if batched else None),
                    )
                    if not batch:
                        continue
                    start = read_offset.get(tp)
                    last: int | None = batch[-1].offset
                    if batched:
                        await self._hand_over(TP(tp.topic, tp.partition), batch)
                    else:
                        last = await self._one_by_one(tp, batch, generation, seeks)
                    # a seek meanwhile (to the committed offsets, or a table recovery's to where
                    # it restores from) set where the partition is read from: it stands
                    if last is not None and self.seeks == seeks and read_offset.get(tp) == start:
                        read_offset[tp] = last + 1
                await asyncio.sleep(0)
        except self.consumer_stopped_errors:
            if not self.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.app.should_stop:
                raise

    async def _hand_over(self, tp: TP, batch: Sequence[Any]) -> None:
        """The detector's turn on ``batch``. It runs to its end even if the fetch loop is
        stopped meanwhile (the worker stops: the stop waits for it in ``wait_empty`` and commits
        it), for a batch cut short would leave its partition's changelog written and its local
        state not."""
        assert self.handler is not None, "no handler for the input: app.agents sets it"
        # what Faust's stream would have told its monitor: its livelock check otherwise logs
        # every partition with records waiting as a stream that processes nothing
        self.app.monitor.stream_inbound_time[tp] = time.monotonic()
        last = batch[-1].offset
        turn = asyncio.ensure_future(self.handler(tp, batch))

        def ended(turn: asyncio.Future[bool]) -> None:
            if self.in_hand is turn:
                self.in_hand = None
            if not turn.cancelled() and turn.exception() is None and turn.result():
                self.processed[tp] = last + 1

        turn.add_done_callback(ended)
        self.in_hand = turn
        await asyncio.shield(turn)

    def _current(self, generation: int, seeks: int) -> bool:
        """Whether a fetch taken in ``generation`` after ``seeks`` seeks is still current."""
        return (
            self.flow_active
            and self.app.consumer_generation_id == generation
            and self.seeks == seeks
        )

    async def _one_by_one(
        self, tp: Any, batch: Sequence[Any], generation: int, seeks: int
    ) -> int | None:
        """Faust's own path, for changelog records (they go to the table recovery), while the
        fetch (taken in ``generation`` after ``seeks`` seeks) is current: the offset of the
        last record delivered (None: none was).

        A rebalance suspends the flow, and the record in hand is dropped: the loop stops there,
        and what follows is read again from where the recovery seeks. It went on: a record
        dropped, the rest of the fetch delivered once the next recovery resumed the flow, and
        the read offset set past them, so the records from the recovery's seek on were dropped
        as read (found by the nemesis under exactly-once: 732 deletions of a changelog
        partition never restored, and a window closed and alerted twice)."""
        delivered = None
        for record in batch:
            if not self._current(generation, seeks):
                break
            call = self.callback(self._to_message(tp, record))
            waited = await self.wait_first(call, self.suspend_flow.wait())
            if call not in waited.done:  # cancelled: the flow was suspended, or a stop
                break
            delivered = record.offset
        return delivered

    async def _batch_ended(self) -> None:
        in_hand = self.in_hand
        if in_hand is not None:
            with contextlib.suppress(Exception):  # the fetch loop reports how it failed
                await asyncio.shield(in_hand)
        if self.settle is not None:
            await self.settle()

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """The batch in hand ends before its partition goes (its state reaches the changelog
        before the next owner restores it), and no batch starts after it."""
        self.stop_flow()
        await self._batch_ended()
        for tp in revoked:
            self.processed.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def wait_empty(self) -> None:
        await self._batch_ended()  # a stop commits what the batch in hand processed
        await super().wait_empty()

    # -- commits: the offsets the detector processed, not Faust's acknowledgements --------------

    def _filter_tps_with_pending_acks(self, topics: Iterable[Any] | None = None) -> Iterator[TP]:
        if self.transactional:
            # the batch's transaction committed its offset. A commit of Faust's own, outside it,
            # would race it: appended between the transaction's offset and its commit marker, an
            # older offset outlives the transaction's, and the batch is processed again (found by
            # the nemesis under exactly-once: dead letters in two committed transactions)
            return iter(())
        wanted = None if topics is None else set(topics)
        return (
            tp
            for tp in list(self.processed)
            if wanted is None or tp in wanted or tp.topic in wanted
        )

    def _new_offset(self, tp: TP) -> int | None:
        return self.processed.get(tp)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        # Faust's chain for the assignment starts the recovery: a previous owner fenced only
        # after the end offsets were read could commit a batch past them meanwhile, which the
        # restore would not hold, with its offset, which the seek would take
        if self.before_recovery is not None:
            await self.before_recovery({tp for tp in assigned if tp.topic in self.batched_topics})
        await super().on_partitions_assigned(assigned, generation_id)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        generation = self.app.consumer_generation_id
        committed = await super().seek_to_committed()  # ConsumerThread.seek_to_committed
        self.seeks += 1
        self.sought_generation = generation
        return committed


class ConsumerThread(driver.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        return await self.call_thread(self._seek_to_committed)  # type: ignore[no-any-return]

    async def _seek_to_committed(self) -> Mapping[Any, int | None]:
        """In the consumer's thread, every assigned partition at once, with no wait between
        the seeks: to its committed offset, or to its beginning if it has none (Faust reads None
        as not committed). aiokafka's own seek_to_committed reads and seeks one partition after
        the other, and a fetch taken between two of those reads holds records of a partition
        already sought; the fetch loop drops them as read before the assignment's seek, and
        nothing reads them again (found by the nemesis: 303 records of a partition skipped).
        With every seek in one step, a fetch is taken wholly before it (read again from the
        sought positions) or wholly after it, and then reaches the fetch loop after the seek's
        end: the fetch loop hands over nothing of an assignment before it (BatchConsumer)."""
        consumer = self._ensure_consumer()
        partitions = consumer.assignment()
        read = await consumer._coordinator.fetch_committed_offsets(partitions)  # one request
        committed = {tp: read[tp].offset if tp in read else None for tp in partitions}
        changelogs = self.consumer.app.tables.changelog_topics  # the tables' recovery seeks those
        # never committed, or at 0 (nothing processed either): from the beginning, known before
        # the seeks (a reset to it would wait, and leave the partition without a position)
        uncommitted = [
            tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs
        ]
        beginnings = await consumer.beginning_offsets(uncommitted) if uncommitted else {}
        targets = {**beginnings, **{tp: o for tp, o in committed.items() if o}}
        assigned = consumer.assignment()  # a rebalance meanwhile seeks again at its end
        for tp, offset in targets.items():
            if tp in assigned:
                consumer._fetcher.seek_to(tp, offset)
        return committed

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        if self.consumer.transactional:  # type: ignore[attr-defined]
            # both read at its start (contract test)
            consumer._isolation_level = "read_committed"
            # A read_committed fetch that finds the records it asks for written and not yet
            # committed is held by the broker up to the fetch's max wait, which Faust sets to
            # 1.5 s: an alert's re-keyed records then waited for it (alert latency at 1,000
            # tx/s under exactly-once, p99 1,607 ms with p50 70 ms)
            consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS_EXACTLY_ONCE
        return consumer


def _later(read: int | None, processed: int | None) -> int | None:
    """Where a partition's next batch starts: its read offset, but never before the end of a
    batch processed in this assignment. Faust seeks to the committed offsets again when its
    recovery ends, and the commit of a batch just processed may not have landed: handed over
    again, its records would be skipped by the detector as applied, but its bad records would
    be dead-lettered twice, under exactly-once in two committed transactions."""
    if processed is None:
        return read
    return processed if read is None else max(read, processed)


def _from(fetched: Sequence[Any], read: int | None) -> Sequence[Any]:
    """The records from offset ``read`` on (a fetch from before a seek back may hold older)."""
    if read is None or not fetched or fetched[0].offset >= read:
        return fetched
    return [record for record in fetched if record.offset >= read]
