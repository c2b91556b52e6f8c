"""The pair-windows table, read and written one partition's batch at a time.

Faust writes a table a key at a time: a RocksDB write, a ``FutureMessage`` for its changelog
record, and, when the broker acknowledges it, a RocksDB write of the changelog offset to restore
from. Here a batch's changes to one partition go out as changelog record batches (under
at-least-once each record names its writer: app.runtime.fencing) and then as one RocksDB write
batch, and the offset to restore from is stored once, when the last of them is acknowledged.
The changelog is handed to the producer before the local store is written: a batch cut short
leaves the local store behind the changelog, never ahead of it (its input is not committed, and
is processed again).

Faust's recovery, its standbys and ``faust -A app tables`` read the same store and changelog:
the keys are the table's (raw bytes), each stored in its own partition's database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from faust.types import TP
from rocksdict import WriteBatch

from app.runtime.fencing import GENERATION_HEADER
from app.runtime.producer import DeliveringProducer


class TableState:
    def __init__(
        self, table: Any, producer: Callable[[], DeliveringProducer], generation: Callable[[], int]
    ) -> None:
        self.table = table  # app.runtime.fencing.FencedTable; exactly-once: a plain one
        self.producer = producer  # the app's, once started
        self.generation = generation  # the consumer group's, as the worker knows it
        self.fence = getattr(table, "fence", None)  # exactly-once: transactions fence writers

    def get(self, partition: int, key: str) -> bytes | None:
        value: bytes | None = self._db(partition).get(key.encode())
        return value

    def items(self) -> Iterable[tuple[Any, bytes]]:
        """Every key and value of the partitions this worker owns."""
        items: Iterable[tuple[Any, bytes]] = self.table.data.items()
        return items

    async def write(
        self, partition: int, changes: Mapping[str, bytes | None], written_ms: int
    ) -> None:
        """Store ``changes`` (None: the key is deleted) in ``partition``, the changelog first;
        ``written_ms``: when the detector decided to write them (the records' timestamp)."""
        if not changes:
            return
        records = [(key.encode(), value) for key, value in changes.items()]
        topic = self.table.changelog_topic.get_topic_name()
        tp = TP(topic, partition)
        headers: list[tuple[str, bytes]] = []
        if self.fence is not None:
            generation = self.generation()
            self.fence.admit(tp, generation, written_ms)  # its own records count as replayed
            headers = [(GENERATION_HEADER, str(generation).encode())]
        sent = await self.producer().send_batch(
            topic, partition, records, timestamp_ms=written_ms, headers=headers
        )
        batch = WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db(partition).write(batch)
        last, count = sent[-1]

        def persisted(done: Any) -> None:
            if not done.cancelled() and done.exception() is None:
                self.table.data.set_persisted_offset(tp, done.result().offset + count - 1)

        last.add_done_callback(persisted)

    def _db(self, partition: int) -> Any:
        return self.table.data._db_for_partition(partition)
