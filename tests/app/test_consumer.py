"""The consumer hands the input over a batch per partition and commits what was processed; a
rebalance's seek to the committed offsets also seeks partitions never committed
(app.runtime.consumer)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from app.runtime.consumer import BatchConsumer, ConsumerThread


class Kafka:
    """aiokafka's consumer as the seek uses it: its assignment, the group's committed offsets
    (read in one request), the fetcher's seeks."""

    def __init__(self, committed: dict[TP, int | None], lost: set[TP] = frozenset()) -> None:
        self.assigned = set(committed)
        self.lost = lost  # revoked while the committed offsets are read
        self.reads: list[list[TP]] = []
        self.sought: dict[TP, object] = {}
        offsets = {tp: SimpleNamespace(offset=o) for tp, o in committed.items() if o is not None}

        async def fetch_committed_offsets(partitions: Any) -> Any:
            self.reads.append(sorted(partitions))
            self.assigned -= self.lost
            return offsets

        self._coordinator = SimpleNamespace(fetch_committed_offsets=fetch_committed_offsets)
        self._fetcher = SimpleNamespace(
            seek_to=lambda tp, offset: self.sought.__setitem__(tp, offset)
        )

    async def beginning_offsets(self, partitions: list[TP]) -> dict[TP, int]:
        self.reads.append(sorted(partitions))
        return dict.fromkeys(partitions, 3)  # the log starts at 3

    def assignment(self) -> set[TP]:
        return set(self.assigned)


def thread(kafka: Kafka) -> ConsumerThread:
    """The consumer's thread without a thread, over ``kafka``."""
    consumer_thread = object.__new__(ConsumerThread)
    consumer_thread._ensure_consumer = lambda: kafka  # type: ignore[method-assign]
    tables = SimpleNamespace(changelog_topics={"app-table-changelog"})
    consumer_thread.consumer = SimpleNamespace(app=SimpleNamespace(tables=tables))  # type: ignore[assignment]
    return consumer_thread


async def test_every_partition_is_sought_in_one_step_to_its_committed_offset_or_beginning() -> None:
    committed = {TP("t", 0): 120, TP("t", 1): None, TP("t", 2): 0, TP("u", 0): 7}
    committed[TP("app-table-changelog", 1)] = None  # never committed: the recovery seeks it
    kafka = Kafka(committed)
    assert await thread(kafka)._seek_to_committed() == committed  # what Faust records
    # one read of the committed offsets, one of the beginnings, then no wait between the seeks
    assert kafka.reads == [sorted(committed), [TP("t", 1), TP("t", 2)]]
    assert kafka.sought == {
        TP("t", 0): 120,
        TP("u", 0): 7,
        TP("t", 1): 3,  # never committed: its beginning
        TP("t", 2): 3,  # 0 committed: nothing processed either
    }


async def test_a_partition_revoked_meanwhile_is_left_to_the_next_assignment() -> None:
    kafka = Kafka({TP("t", 0): 5, TP("t", 1): None, TP("t", 2): 9}, lost={TP("t", 0), TP("t", 1)})
    await thread(kafka)._seek_to_committed()
    assert kafka.sought == {TP("t", 2): 9}


async def test_the_seek_opens_the_assignment_to_batches_once_both_seeks_are_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the seek to the committed offsets and that to the beginnings are one call into the thread
    async def seek_to_committed(self: Any) -> Any:
        assert (consumer.seeks, consumer.sought_generation) == (0, None)  # not yet open
        return {TP("t", 0): 7}

    monkeypatch.setattr(driver.Consumer, "seek_to_committed", seek_to_committed)
    consumer = object.__new__(BatchConsumer)
    consumer.app = SimpleNamespace(consumer_generation_id=3)  # type: ignore[assignment]
    consumer.seeks, consumer.sought_generation = 0, None
    assert await consumer.seek_to_committed() == {TP("t", 0): 7}
    assert consumer.seeks == 1  # a fetch made before it is stale
    assert consumer.sought_generation == 3  # batches of this assignment may be handed over
    assert ConsumerThread.seek_to_committed is not driver.AIOKafkaConsumerThread.seek_to_committed


def record(offset: int) -> Any:
    return SimpleNamespace(offset=offset, key=None, value=b"", timestamp=None)


class Loop:
    """A BatchConsumer's fetch loop over the fetches given, with the handler and callback
    recording what reached them; the loop stops after the last fetch."""

    def __init__(self, fetches: list[dict[TP, list[int]]], done: bool = True) -> None:
        self.handed: list[tuple[TP, list[int]]] = []
        self.one_by_one: list[tuple[str, int]] = []
        self.done = done
        consumer = self.consumer = object.__new__(BatchConsumer)
        consumer.processed = {}
        consumer.in_hand = None
        consumer.seeks = 0
        consumer.sought_generation = 1  # this assignment's seek to the committed offsets is done
        consumer.batched_topics = frozenset({"in"})
        consumer._read_offset = defaultdict(lambda: None)
        consumer._committed_offset = defaultdict(lambda: None)
        consumer.flow_active = True
        consumer._stopped = asyncio.Event()  # type: ignore[assignment]
        consumer._crashed = asyncio.Event()  # type: ignore[assignment]
        consumer.can_resume_flow = asyncio.Event()  # type: ignore[assignment]
        consumer.app = SimpleNamespace(  # type: ignore[assignment]
            consumer_generation_id=1,
            should_stop=False,
            monitor=SimpleNamespace(stream_inbound_time={}),
        )
        self.fetches = list(fetches)
        self.fetcher = SimpleNamespace(_stopped=asyncio.Event())

        async def wait_next_records(timeout: float) -> Any:
            if not self.fetches:
                self.fetcher._stopped.set()
                return {}, None
            fetch = self.fetches.pop(0)
            return {tp: [record(o) for o in offsets] for tp, offsets in fetch.items()}, None

        async def handler(tp: TP, records: Any) -> bool:
            self.handed.append((tp, [r.offset for r in records]))
            await self.during(tp)
            return self.done

        async def callback(message: Any) -> None:
            self.one_by_one.append((message.topic, message.offset))

        consumer._wait_next_records = wait_next_records  # type: ignore[method-assign]
        consumer.handler = handler
        consumer.callback = callback  # type: ignore[assignment]
        consumer._to_message = lambda tp, r: SimpleNamespace(topic=tp.topic, offset=r.offset)  # type: ignore[method-assign]
        consumer.wait_first = self.wait_first  # type: ignore[method-assign]
        consumer.suspend_flow = asyncio.Event()  # type: ignore[assignment]

    async def wait_first(self, *coros: Any) -> Any:
        """mode's: the callback (``coros[0]``) or the flow's suspension, whichever is first; a
        callback that raises CancelledError stands for one the suspension cancelled."""
        coros[1].close()
        try:
            await coros[0]
        except asyncio.CancelledError:
            return SimpleNamespace(done=[coros[1]])
        return SimpleNamespace(done=[coros[0]])

    async def during(self, tp: TP) -> None:
        """What happens while the handler works on a batch of ``tp``."""

    async def run(self) -> None:
        await asyncio.wait_for(self.consumer._drain_messages(self.fetcher), 5)


async def in_a_batch(loop: Loop) -> tuple[asyncio.Event, asyncio.Future[None]]:
    """Run ``loop`` until its first batch is in hand, held there until the event is set."""
    release = asyncio.Event()

    async def slow(tp: TP) -> None:
        await release.wait()

    loop.during = slow  # type: ignore[method-assign]
    running = asyncio.ensure_future(loop.run())
    while not loop.handed:
        await asyncio.sleep(0)
    return release, running


async def test_each_input_partition_s_records_are_handed_over_as_one_batch() -> None:
    loop = Loop([{TP("in", 0): [5, 6, 7], TP("in", 1): [0, 1]}, {TP("in", 0): [8]}])
    await loop.run()
    assert loop.handed == [(TP("in", 0), [5, 6, 7]), (TP("in", 1), [0, 1]), (TP("in", 0), [8])]
    consumer = loop.consumer
    assert consumer.processed == {TP("in", 0): 9, TP("in", 1): 2}
    assert set(consumer.app.monitor.stream_inbound_time) == {TP("in", 0), TP("in", 1)}
    # the offsets to commit are those processed, whatever Faust acknowledged
    assert list(consumer._filter_tps_with_pending_acks()) == [TP("in", 0), TP("in", 1)]
    assert consumer._filter_committable_offsets([TP("in", 0)]) == {TP("in", 0): 9}
    assert list(consumer._filter_tps_with_pending_acks({"other"})) == []


async def test_under_exactly_once_faust_commits_nothing_of_its_own() -> None:
    # each batch's transaction commits its offset; an older one committed by Faust outside it
    # could land between the transaction's offset and its commit marker, and outlive it
    loop = Loop([{TP("in", 0): [5, 6, 7]}])
    loop.consumer.transactional = True
    await loop.run()
    assert loop.consumer.processed == {TP("in", 0): 8}  # the next batch starts there
    assert list(loop.consumer._filter_tps_with_pending_acks()) == []


async def test_a_batch_not_processed_is_not_committed() -> None:
    loop = Loop([{TP("in", 0): [5, 6, 7]}], done=False)  # the partition was lost meanwhile
    await loop.run()
    assert loop.handed == [(TP("in", 0), [5, 6, 7])]
    assert loop.consumer.processed == {}


async def test_records_below_the_read_offset_are_not_handed_over_again() -> None:
    # a fetch made before a seek back may still hold records from before it
    loop = Loop([{TP("in", 0): [3, 4, 5, 6]}])
    loop.consumer._read_offset[TP("in", 0)] = 5
    await loop.run()
    assert loop.handed == [(TP("in", 0), [5, 6])]


async def test_a_seek_back_within_the_assignment_hands_over_no_processed_record_again() -> None:
    # Faust seeks to the committed offsets again when its recovery ends; the commit of the
    # batch 3-6 had not landed: only what follows it is handed over
    loop = Loop([{TP("in", 0): [3, 4, 5, 6]}, {TP("in", 0): [3, 4, 5, 6, 7]}])
    fetch = loop.consumer._wait_next_records

    async def seek_back_then_fetch(timeout: float) -> Any:
        if loop.handed:
            loop.consumer._read_offset[TP("in", 0)] = 3  # what Faust's seek sets
        return await fetch(timeout)

    loop.consumer._wait_next_records = seek_back_then_fetch  # type: ignore[method-assign]
    await loop.run()
    assert loop.handed == [(TP("in", 0), [3, 4, 5, 6]), (TP("in", 0), [7])]


async def test_nothing_is_handed_over_before_the_assignment_s_seek() -> None:
    # Faust resumes the partitions before its recovery seeks them to the committed offsets
    loop = Loop([{TP("in", 0): [5, 6]}, {TP("changelog", 0): [1]}])
    loop.consumer.app.consumer_generation_id = 2  # a new assignment, not sought yet
    await loop.run()
    assert loop.handed == []
    assert loop.one_by_one == [("changelog", 1)]  # the recovery reads its changelogs


async def test_a_seek_during_a_batch_leaves_the_rest_of_the_fetch_unread() -> None:
    # Faust's recovery ends during the batch of partition 0 and seeks every partition to its
    # committed offset: partition 1's records in this fetch were read from a position past its
    # committed offset 3, and handed over they would leave 3-5 unread for good
    loop = Loop([{TP("in", 0): [5, 6], TP("in", 1): [6, 7]}, {TP("in", 1): [3, 4, 5, 6, 7]}])

    async def seek(tp: TP) -> None:
        if tp == TP("in", 0) and not loop.consumer.seeks:
            loop.consumer.seeks += 1
            loop.consumer._read_offset.update({TP("in", 0): 5, TP("in", 1): 3})

    loop.during = seek  # type: ignore[method-assign]
    await loop.run()
    assert loop.handed == [(TP("in", 0), [5, 6]), (TP("in", 1), [3, 4, 5, 6, 7])]
    # partition 0's batch was processed: the seek's offset stays, its records are not read
    # again in this assignment
    assert loop.consumer.processed == {TP("in", 0): 7, TP("in", 1): 8}


async def test_a_rebalance_begun_during_a_batch_leaves_the_rest_of_the_fetch_unread() -> None:
    # what is left is read again from the committed offsets at the rebalance's end: its read
    # offset does not move, and nothing of it is committed
    loop = Loop([{TP("in", 0): [5, 6], TP("in", 1): [9, 10]}])

    async def rebalance(tp: TP) -> None:
        loop.consumer.stop_flow()

    loop.during = rebalance  # type: ignore[method-assign]
    await loop.run()
    assert loop.handed == [(TP("in", 0), [5, 6])]
    assert loop.consumer.processed == {TP("in", 0): 7}
    assert loop.consumer._read_offset[TP("in", 1)] is None


async def test_a_new_generation_during_a_batch_leaves_the_rest_of_the_fetch_unread() -> None:
    loop = Loop([{TP("in", 0): [5], TP("in", 1): [9]}])

    async def rebalanced(tp: TP) -> None:
        loop.consumer.app.consumer_generation_id = 2

    loop.during = rebalanced  # type: ignore[method-assign]
    await loop.run()
    assert loop.handed == [(TP("in", 0), [5])]


async def test_changelog_records_take_faust_s_path_one_by_one() -> None:
    loop = Loop([{TP("table-changelog", 0): [0, 1], TP("in", 0): [4]}])
    await loop.run()
    assert loop.one_by_one == [("table-changelog", 0), ("table-changelog", 1)]
    assert loop.handed == [(TP("in", 0), [4])]
    assert TP("table-changelog", 0) not in loop.consumer.processed  # commits: the input only


async def test_a_revocation_waits_for_the_batch_in_hand_and_forgets_what_it_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    revoked_while: list[Any] = []

    async def faust_s_revocation(self: Any, revoked: Any) -> None:
        revoked_while.append(self.in_hand)

    monkeypatch.setattr(driver.Consumer, "on_partitions_revoked", faust_s_revocation)
    loop = Loop([{TP("in", 0): [5, 6]}, {TP("in", 0): [7]}])
    release, running = await in_a_batch(loop)
    revoking = asyncio.ensure_future(loop.consumer.on_partitions_revoked({TP("in", 0)}))
    await asyncio.sleep(0.01)
    assert not revoking.done()  # the batch in hand first
    release.set()
    await revoking
    assert revoked_while == [None]
    assert loop.consumer.processed == {}  # revoked: its next owner commits it
    assert loop.consumer.flow_active is False  # no batch after it
    loop.consumer.flow_active = True
    await running


async def test_a_stopped_fetch_loop_lets_the_batch_in_hand_end_and_count() -> None:
    # the worker stops mid-batch: the batch ends (its changelog and local state both written)
    # and the stop's commit includes it
    loop = Loop([{TP("in", 0): [5, 6]}])
    release, running = await in_a_batch(loop)
    running.cancel()  # Faust stops the fetcher
    with pytest.raises(asyncio.CancelledError):
        await running
    assert loop.consumer.in_hand is not None and not loop.consumer.in_hand.done()
    release.set()
    await loop.consumer._batch_ended()  # what wait_empty does before it commits
    assert loop.consumer.processed == {TP("in", 0): 7}
    assert loop.consumer.in_hand is None


async def test_exactly_once_fences_the_previous_owners_before_faust_s_recovery_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the recovery reads the changelogs' end offsets: a previous owner still able to commit
    # afterwards would leave a batch past them, its offset committed and its state not restored
    steps: list[Any] = []

    async def faust_s_assignment(self: Any, assigned: set[TP], generation_id: int = 0) -> None:
        steps.append("recovery")

    async def start_producers(partitions: set[TP]) -> None:
        steps.append(partitions)

    monkeypatch.setattr(driver.Consumer, "on_partitions_assigned", faust_s_assignment)
    consumer = object.__new__(BatchConsumer)
    consumer.batched_topics = frozenset({"in"})
    consumer.before_recovery = start_producers  # type: ignore[method-assign]
    await consumer.on_partitions_assigned({TP("in", 0), TP("in-changelog", 0)}, 4)
    assert steps == [{TP("in", 0)}, "recovery"]


async def test_under_exactly_once_a_revocation_waits_for_the_commits_running_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a batch's transaction commits after the batch was handed over: the partitions go only
    # once it ended, or the next owner's restore would miss it
    steps: list[str] = []

    async def faust_s_revocation(self: Any, revoked: Any) -> None:
        steps.append("revoked")

    committed = asyncio.Event()

    async def settle() -> None:
        await committed.wait()
        steps.append("committed")

    monkeypatch.setattr(driver.Consumer, "on_partitions_revoked", faust_s_revocation)
    loop = Loop([])
    loop.consumer.settle = settle  # type: ignore[method-assign]
    revoking = asyncio.ensure_future(loop.consumer.on_partitions_revoked({TP("in", 0)}))
    await asyncio.sleep(0.01)
    assert steps == []
    committed.set()
    await revoking
    assert steps == ["committed", "revoked"]


async def test_a_rebalance_during_a_changelog_fetch_leaves_its_rest_to_the_recovery_s_seek() -> (
    None
):
    # a rebalance suspends the flow while record 6 is in hand (dropped); the next recovery
    # seeks the changelog partition back to 3 and resumes the flow. The rest of the old fetch
    # must not be delivered after it, nor its end taken as read: the records from 3 on would be
    # dropped, and the table restored with a gap (found by the nemesis under exactly-once)
    changelog = TP("table-changelog", 0)
    loop = Loop([{changelog: [5, 6, 7, 8]}, {changelog: [3, 4, 5, 6, 7, 8]}])
    consumer = loop.consumer
    delivered = loop.one_by_one

    async def callback(message: Any) -> None:
        if message.offset == 6 and len(delivered) == 1:
            consumer.app.consumer_generation_id += 1  # the rebalance
            consumer._read_offset[changelog] = 3  # the next recovery's seek (Faust's seek_wait)
            raise asyncio.CancelledError  # the record in hand, dropped
        delivered.append((message.topic, message.offset))

    consumer.callback = callback  # type: ignore[assignment]
    await loop.run()
    assert [offset for _, offset in delivered] == [5, 3, 4, 5, 6, 7, 8]
    assert consumer._read_offset[changelog] == 9


@pytest.mark.parametrize("transactional", [True, False])
def test_under_exactly_once_the_worker_reads_committed_with_short_fetch_waits(
    monkeypatch: pytest.MonkeyPatch, transactional: bool
) -> None:
    made = SimpleNamespace(_isolation_level="read_uncommitted", _fetch_max_wait_ms=1500)
    monkeypatch.setattr(
        driver.AIOKafkaConsumerThread, "_create_worker_consumer", lambda self, transport: made
    )
    consumer_thread = object.__new__(ConsumerThread)
    consumer_thread.consumer = SimpleNamespace(transactional=transactional)  # type: ignore[assignment]
    consumer = consumer_thread._create_worker_consumer(None)
    expected = ("read_committed", 100) if transactional else ("read_uncommitted", 1500)
    assert (consumer._isolation_level, consumer._fetch_max_wait_ms) == expected
