"""A rebalance's seek to the committed offsets also seeks partitions never committed
(app.seeking)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from app.seeking import SeekingConsumer


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
