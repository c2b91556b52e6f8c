"""The pair-windows table as the detector writes it: the local RocksDB store, then the changelog.

A Faust table write (``table[key] = value``) goes through Faust's managed dict, its sensors and
its producer buffer, and costs about three times what the detector does with a transaction
(bench/floor.py measures it). :class:`ChangelogTable` writes the same two things, the store of
the event's partition and a changelog record in Faust's own format (the raw key and value,
``None`` for a delete), straight to Faust's producer, and records the changelog offset in the
store when the broker acknowledges it, as Faust does. Recovery, standby replicas and table routing
read them as Faust's own: the table is still Faust's, only the write path is shorter.

Delivery: the agent calls :meth:`ChangelogTable.flush` after each record, before Faust may ack
it, and Faust flushes its producer before every offset commit, so no input offset is committed
before the changelog records of its writes are acknowledged (at-least-once, as before).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)


class ChangelogTable(MutableMapping[str, bytes]):
    """A Faust table of bytes values, read and written through its store and changelog."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self._pending: list[tuple[bytes, bytes | None]] = []
        self._crash: asyncio.Future[None] | None = None

    @property
    def _store(self) -> Any:
        return self.table.data  # a faust.stores.base.SerializedStore

    def __getitem__(self, key: str) -> bytes:
        value: bytes = self._store[key]
        return value

    def __setitem__(self, key: str, value: bytes) -> None:
        # encoded as Faust encodes a table write; written as its recovery applies a changelog
        # record (store._set: the current event's partition, like Faust's own write)
        store = self._store
        raw_key, raw_value = store._encode_key(key), store._encode_value(value)
        store._set(raw_key, raw_value)
        self._pending.append((raw_key, raw_value))

    def __delitem__(self, key: str) -> None:
        raw_key = self._store._encode_key(key)
        self._store._del(raw_key)
        self._pending.append((raw_key, None))

    def __iter__(self) -> Iterator[str]:
        for key in self._store:
            yield key.decode() if isinstance(key, bytes) else key

    def __len__(self) -> int:
        return len(self._store)

    def items(self) -> Any:  # the store's own iteration: one pass, no lookup per key
        return self._store.items()

    async def flush(self, partition: int) -> None:
        """Hand the changelog records of the writes made for ``partition`` to the producer."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        producer = self.table.app.producer
        topic = self.table.changelog_topic.get_topic_name()
        for key, value in pending:
            sent = await producer.send(topic, key, value, partition, None, None)
            asyncio.ensure_future(sent).add_done_callback(self._on_sent)  # an aiokafka future

    def _on_sent(self, sent: asyncio.Future[Any]) -> None:
        if sent.cancelled():
            return
        error = sent.exception()
        if error is not None:  # the producer gave up: the worker must restart and recover
            log.error("changelog write failed, stopping the worker: %r", error)
            self._crash = self._crash or asyncio.ensure_future(self.table.app.crash(error))
            return
        metadata = sent.result()
        self._store.set_persisted_offset(TP(metadata.topic, metadata.partition), metadata.offset)
