"""The detector's write path to its table: the store at once, the changelog on flush."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from faust.stores.base import SerializedStore
from faust.types import TP

from app.state import ChangelogTable

CHANGELOG = "app-pair-windows-changelog"


class FakeStore(dict[bytes, bytes]):
    """The part of Faust's SerializedStore that ChangelogTable uses (keys encoded as UTF-8)."""

    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[TP, int] = {}

    def _encode_key(self, key: str) -> bytes:
        return key.encode()

    def _encode_value(self, value: bytes) -> bytes:
        return value

    def _set(self, key: bytes, value: bytes) -> None:
        self[key] = value

    def _del(self, key: bytes) -> None:
        self.pop(key, None)

    def __getitem__(self, key: Any) -> bytes:
        return super().__getitem__(key.encode() if isinstance(key, str) else key)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


class Metadata:
    def __init__(self, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = CHANGELOG, partition, offset


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int]] = []
        self.futures: list[asyncio.Future[Metadata]] = []

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int,
                   timestamp: None, headers: None) -> asyncio.Future[Metadata]:  # fmt: skip
        self.sent.append((topic, key, value, partition))
        future: asyncio.Future[Metadata] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


class FakeTable:
    def __init__(self) -> None:
        self.data = FakeStore()
        self.crashed: list[BaseException] = []
        producer = FakeProducer()
        table = self

        class App:
            def __init__(self) -> None:
                self.producer = producer

            async def crash(self, error: BaseException) -> None:
                table.crashed.append(error)

        class Changelog:
            def get_topic_name(self) -> str:
                return CHANGELOG

        self.app = App()
        self.changelog_topic = Changelog()


async def test_writes_reach_the_store_at_once_and_the_changelog_on_flush_in_order() -> None:
    table = FakeTable()
    state = ChangelogTable(table)
    state["1:2"] = b"a"
    state["3:4"] = b"b"
    del state["1:2"]
    assert table.data == {b"3:4": b"b"}
    assert state.get("3:4") == b"b" and state.get("1:2") is None
    assert table.app.producer.sent == []
    await state.flush(5)
    assert table.app.producer.sent == [
        (CHANGELOG, b"1:2", b"a", 5),
        (CHANGELOG, b"3:4", b"b", 5),
        (CHANGELOG, b"1:2", None, 5),  # a delete is a tombstone, as Faust writes it
    ]
    await state.flush(5)  # nothing new: nothing sent again
    assert len(table.app.producer.sent) == 3


async def flushed(partition: int, writes: dict[str, bytes]) -> FakeTable:
    """A table after ``writes`` and a flush for ``partition``: its sends are not acknowledged."""
    table = FakeTable()
    state = ChangelogTable(table)
    for key, value in writes.items():
        state[key] = value
    await state.flush(partition)
    return table


async def test_the_changelog_offset_is_persisted_when_the_broker_acknowledges() -> None:
    table = await flushed(3, {"1:2": b"a", "3:4": b"b"})
    assert table.data.persisted == {}
    first, second = table.app.producer.futures
    first.set_result(Metadata(3, 41))
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert table.data.persisted == {TP(CHANGELOG, 3): 41}
    second.set_result(Metadata(3, 42))
    await asyncio.sleep(0)
    assert table.data.persisted == {TP(CHANGELOG, 3): 42}


async def test_a_failed_changelog_write_crashes_the_worker_once() -> None:
    table = await flushed(0, {"1:2": b"a", "5:6": b"c"})
    for future in table.app.producer.futures:
        future.set_exception(OSError("broker gone"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert [str(e) for e in table.crashed] == ["broker gone"]
    assert table.data.persisted == {}


def test_faust_recovery_applies_a_changelog_record_as_this_writes_it() -> None:
    # The records ChangelogTable sends are the store's encoded key and value (None: a delete);
    # Faust's recovery applies them with the same two calls.
    source = inspect.getsource(SerializedStore.apply_changelog_batch)
    assert "self._del(key)" in source
    assert "self._set(key, value)" in source
