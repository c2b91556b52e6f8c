"""A batch's changes to a partition: the changelog first, as record batches naming their writer,
then one RocksDB write, and the offset to restore from once acknowledged (app.runtime.state)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from rocksdict import Options, Rdict

from app.runtime.fencing import GENERATION_HEADER, ChangelogFence, FencedTable
from app.runtime.state import TableState
from tests.app.test_fencing import event

NOW_MS = 1_796_554_415_363  # a write time


class Store:
    """Faust's RocksDB store as TableState uses it, on a real RocksDB per partition."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dbs: dict[int, Rdict] = {}
        self.persisted: dict[TP, int] = {}
        self.applied: list[bytes] = []

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self.dbs:
            self.dbs[partition] = Rdict(str(self.root / str(partition)), Options(raw_mode=True))
        return self.dbs[partition]

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        self.applied.extend(event.message.value for event in batch)


class Producer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.sent: list[dict[str, Any]] = []
        self.acks: list[asyncio.Future[Any]] = []

    async def send_batch(self, topic: str, partition: int, records: Any, **kwargs: Any) -> Any:
        # the local store is not written yet when the changelog is handed over
        local = self.store._db_for_partition(partition)
        self.sent.append(
            {"topic": topic, "partition": partition, "records": list(records), **kwargs,
             "local_before": {key: local.get(key) for key, _ in records}}
        )  # fmt: skip
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return [(ack, len(records))]


def state_on(tmp_path: Path, fenced: bool = True) -> tuple[TableState, Store, Producer]:
    store = Store(tmp_path)
    producer = Producer(store)
    table = SimpleNamespace(
        changelog_topic=SimpleNamespace(get_topic_name=lambda: "changelog"), data=store
    )
    if fenced:  # at-least-once: app.runtime.fencing.FencedTable
        table.fence = ChangelogFence()
    return TableState(table, lambda: producer, generation=lambda: 7), store, producer  # type: ignore[arg-type]


async def test_a_batch_goes_to_the_changelog_then_to_the_local_store(tmp_path: Path) -> None:
    state, _, producer = state_on(tmp_path)
    await state.write(3, {"1:2": b"a", "3:4": b"b"}, NOW_MS)
    await state.write(3, {"1:2": b"c", "3:4": None}, NOW_MS)
    first, second = producer.sent
    assert first["topic"] == "changelog" and first["partition"] == 3
    assert first["records"] == [(b"1:2", b"a"), (b"3:4", b"b")]
    assert first["headers"] == [(GENERATION_HEADER, b"7")]
    assert first["timestamp_ms"] == NOW_MS  # the write time the detector gave
    assert first["local_before"] == {b"1:2": None, b"3:4": None}
    assert second["records"] == [(b"1:2", b"c"), (b"3:4", None)]  # a deletion is a tombstone
    assert second["local_before"] == {b"1:2": b"a", b"3:4": b"b"}
    assert state.get(3, "1:2") == b"c" and state.get(3, "3:4") is None


async def test_under_exactly_once_the_records_name_no_writer(tmp_path: Path) -> None:
    # a plain Faust table: transactions fence a replaced writer (app.runtime.transactions)
    state, _, producer = state_on(tmp_path, fenced=False)
    await state.write(3, {"1:2": b"a"}, NOW_MS)
    assert producer.sent[0]["headers"] == []
    assert state.get(3, "1:2") == b"a"


async def test_the_offset_to_restore_from_is_stored_once_the_batch_is_acknowledged(
    tmp_path: Path,
) -> None:
    state, store, producer = state_on(tmp_path)
    await state.write(0, {"1:2": b"a", "3:4": b"b", "5:6": b"c"}, NOW_MS)
    assert store.persisted == {}
    producer.acks[0].set_result(SimpleNamespace(offset=40))  # the batch's first offset
    await asyncio.sleep(0)
    assert store.persisted == {TP("changelog", 0): 42}


async def test_nothing_to_write_sends_nothing(tmp_path: Path) -> None:
    state, _, producer = state_on(tmp_path)
    await state.write(0, {}, NOW_MS)
    assert producer.sent == []


async def test_a_zombie_s_records_after_the_worker_s_own_writes_are_dropped(
    tmp_path: Path,
) -> None:
    # B restored A's records, then wrote the partition itself; it lost it and gets it back:
    # the restore starts after B's own records, where A's held ones landed
    store = Store(tmp_path)
    table = object.__new__(FencedTable)
    vars(table).update({"fence": ChangelogFence(), "_data": store, "name": "pair-windows"})
    state = TableState(table, lambda: Producer(store), generation=lambda: 7)  # type: ignore[arg-type,return-value]
    table._changelog_topic = SimpleNamespace(get_topic_name=lambda: "changelog")  # type: ignore[attr-defined]

    table.apply_changelog_batch([event(0, 5, 100, b"a")])
    await state.write(0, {"1:2": b"b"}, int(time.time() * 1000))  # generation 7, now
    table.apply_changelog_batch([event(2, 5, 120, b"stale")])
    assert store.applied == [b"a"]
