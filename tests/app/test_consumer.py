"""A rebalance's seek to the committed offsets also seeks partitions never committed
(app.runtime.consumer)."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from intervaltree import IntervalTree

from app.runtime.consumer import SeekingConsumer


def bare(seek_to_beginning: Any = None) -> SeekingConsumer:
    """A SeekingConsumer without an app: its thread only seeks to beginnings."""
    consumer = object.__new__(SeekingConsumer)
    consumer.rereading = {}
    consumer._thread = SimpleNamespace(seek_to_beginning=seek_to_beginning)  # type: ignore[assignment]
    tables = SimpleNamespace(changelog_topics={"app-table-changelog"})
    consumer.app = SimpleNamespace(tables=tables)  # type: ignore[assignment]
    return consumer


async def test_partitions_without_a_committed_offset_go_back_to_their_beginning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    committed = {TP("t", 0): 120, TP("t", 1): None, TP("t", 2): 0}
    committed[TP("app-table-changelog", 1)] = None  # never committed: the recovery seeks it
    sought: list[Any] = []

    async def seek_to_committed(self: Any) -> Any:
        return committed

    async def seek_to_beginning(*partitions: Any) -> None:
        sought.extend(partitions)

    monkeypatch.setattr(driver.Consumer, "seek_to_committed", seek_to_committed)
    consumer = bare(seek_to_beginning)
    consumer.rereading = {TP("t", 0): (40, 90)}  # a reread under the assignment before
    assert await consumer.seek_to_committed() == committed  # what Faust records, unchanged
    assert consumer.rereading == {}
    assert sought == [TP("t", 1), TP("t", 2)]  # 0 committed: nothing processed either


async def test_nothing_is_sought_when_every_partition_was_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def seek_to_committed(self: Any) -> Any:
        return {TP("t", 0): 5}

    async def seek_to_beginning(*partitions: Any) -> None:
        raise AssertionError("no seek expected")

    monkeypatch.setattr(driver.Consumer, "seek_to_committed", seek_to_committed)
    consumer = bare(seek_to_beginning)
    assert await consumer.seek_to_committed() == {TP("t", 0): 5}


async def test_a_partition_revoked_meanwhile_is_left_to_the_next_assignment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def seek_to_committed(self: Any) -> Any:
        return {TP("t", 0): None}

    async def seek_to_beginning(*partitions: Any) -> None:
        raise IllegalStateError("Partitions {TP('t', 0)} are not assigned")

    monkeypatch.setattr(driver.Consumer, "seek_to_committed", seek_to_committed)
    consumer = bare(seek_to_beginning)
    assert await consumer.seek_to_committed() == {TP("t", 0): None}


async def test_a_reread_drops_the_records_fetched_before_the_seek(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the fetch loop would move its read offset past 43 with 1108 and 1109, then drop 43
    fetched = [(TP("t", 0), 1107), (TP("t", 1), 7), (TP("t", 0), 1109), (TP("t", 0), 44)]
    fetched += [(TP("t", 0), 45)]  # 43 is a transaction marker: 44 is the first record

    async def getmany(self: Any, timeout: float) -> Any:
        for tp, offset in fetched:
            yield tp, SimpleNamespace(offset=offset)

    async def seek_wait(self: Any, offsets: Any) -> None:
        pass

    monkeypatch.setattr(driver.Consumer, "getmany", getmany)
    monkeypatch.setattr(driver.Consumer, "seek_wait", seek_wait)
    consumer = bare()
    consumer._read_offset = {TP("t", 0): 1107}
    await consumer.reread(TP("t", 0), 43, until=1107)
    passed = [(tp.partition, m.offset) async for tp, m in consumer.getmany(1.0)]
    assert passed == [(1, 7), (0, 44), (0, 45)]
    assert consumer._read_offset[TP("t", 0)] is None  # cleared for 44: not dropped below 1107
    assert consumer.rereading == {}


def bookkeeping(
    committed: int,
    acked: list[int],
    gap: tuple[int, int] | None = None,
    kind: type = SeekingConsumer,
) -> Any:
    """A consumer holding Faust's commit bookkeeping of partition t/0: the offset committed,
    the offsets acknowledged, and a gap the fetch loop saw (intervaltree: end excluded)."""
    consumer = object.__new__(kind)
    consumer._acked = defaultdict(list, {TP("t", 0): list(acked)})
    consumer._acked_index = defaultdict(set, {TP("t", 0): set(acked)})
    consumer._gap = defaultdict(IntervalTree)
    if gap is not None:
        consumer._gap[TP("t", 0)].addi(*gap)
    consumer._committed_offset = defaultdict(lambda: None, {TP("t", 0): committed})
    return consumer


def commits(consumer: Any, times: int) -> list[int | None]:
    """The offsets committed by ``times`` commits in a row, as Faust's commit moves them."""
    found = []
    for _ in range(times):
        offset = consumer._new_offset(TP("t", 0))
        if offset is not None:
            consumer._committed_offset[TP("t", 0)] = offset
        found.append(offset)
    return found


def test_a_gap_over_offsets_acknowledged_does_not_slow_the_commits_to_one_offset() -> None:
    # Faust adds a gap it saw to the offsets acknowledged, even offsets acknowledged already:
    # each one listed twice ends the run it commits up to (seen: 7 offsets per 20 s)
    faust = bookkeeping(100, [*range(100, 200)], (120, 180), kind=driver.Consumer)
    assert commits(faust, 3) == [121, 122, 123]  # Faust alone
    ours = bookkeeping(100, [*range(100, 200)], (120, 180))
    assert commits(ours, 3) == [121, 200, None]  # the run that held the gap, then the rest
    assert ours._acked[TP("t", 0)] == []


def test_offsets_acknowledged_after_their_gap_was_added_are_listed_once() -> None:
    # 100 and 101 not acknowledged yet: nothing committed, the gap 120-149 listed as done;
    # then 120-129 come (read again) with 100 and 101
    for kind, expected in ((driver.Consumer, 121), (SeekingConsumer, 151)):
        consumer = bookkeeping(100, [*range(102, 120), 150], (120, 150), kind=kind)
        assert commits(consumer, 1) == [None]
        consumer._acked[TP("t", 0)] += [100, 101, *range(120, 130)]
        assert commits(consumer, 1) == [expected]


def test_a_commit_seen_on_the_broker_moves_the_offset_faust_commits_from() -> None:
    # seen: 107 committed on the broker, 83 by Faust's count, the records from 107 on
    # acknowledged: Faust waits for 83 to 106, which do not come again
    consumer = bookkeeping(83, [*range(107, 200)])
    assert commits(consumer, 1) == [None]
    consumer.follow_commit(TP("t", 0), 107)
    assert commits(consumer, 1) == [200]
    consumer.follow_commit(TP("t", 0), 150)  # behind: nothing changes
    assert consumer._committed_offset[TP("t", 0)] == 200
    consumer.follow_commit(TP("t", 1), 10)  # nothing known: Faust commits what it has
    assert consumer._committed_offset.get(TP("t", 1)) is None
