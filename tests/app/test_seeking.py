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


async def test_partitions_without_a_committed_offset_go_back_to_their_beginning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    committed = {TP("t", 0): 120, TP("t", 1): None, TP("t", 2): 0}
    sought: list[Any] = []

    async def seek_to_committed(self: Any) -> Any:
        return committed

    async def seek_to_beginning(*partitions: Any) -> None:
        sought.extend(partitions)

    monkeypatch.setattr(driver.Consumer, "seek_to_committed", seek_to_committed)
    consumer = object.__new__(SeekingConsumer)
    consumer._thread = SimpleNamespace(seek_to_beginning=seek_to_beginning)  # type: ignore[assignment]
    assert await consumer.seek_to_committed() == committed  # what Faust records, unchanged
    assert sought == [TP("t", 1), TP("t", 2)]  # 0 committed: nothing processed either


async def test_nothing_is_sought_when_every_partition_was_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def seek_to_committed(self: Any) -> Any:
        return {TP("t", 0): 5}

    async def seek_to_beginning(*partitions: Any) -> None:
        raise AssertionError("no seek expected")

    monkeypatch.setattr(driver.Consumer, "seek_to_committed", seek_to_committed)
    consumer = object.__new__(SeekingConsumer)
    consumer._thread = SimpleNamespace(seek_to_beginning=seek_to_beginning)  # type: ignore[assignment]
    assert await consumer.seek_to_committed() == {TP("t", 0): 5}


async def test_a_partition_revoked_meanwhile_is_left_to_the_next_assignment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def seek_to_committed(self: Any) -> Any:
        return {TP("t", 0): None}

    async def seek_to_beginning(*partitions: Any) -> None:
        raise IllegalStateError("Partitions {TP('t', 0)} are not assigned")

    monkeypatch.setattr(driver.Consumer, "seek_to_committed", seek_to_committed)
    consumer = object.__new__(SeekingConsumer)
    consumer._thread = SimpleNamespace(seek_to_beginning=seek_to_beginning)  # type: ignore[assignment]
    assert await consumer.seek_to_committed() == {TP("t", 0): None}
