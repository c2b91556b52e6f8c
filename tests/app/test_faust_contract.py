"""What the worker relies on in the installed Faust (see docs/semantics.md), pinned.

If an upgrade of faust-streaming changes one of these, this fails before the pipeline does.
"""

from __future__ import annotations

import inspect

import pytest
from faust.stores import rocksdb
from faust.tables.base import Collection
from faust.transport.consumer import Consumer

from app import app, settings


def test_the_rocksdb_store_runs_on_rocksdict() -> None:
    assert rocksdb.USE_ROCKSDICT
    assert settings.store == "rocksdb://"


def test_a_table_cannot_be_written_outside_an_event() -> None:
    # Why idle partitions get a tick record: table writes need the current event's partition.
    with pytest.raises(RuntimeError, match="outside of agent/stream"):
        Collection._send_changelog(None, None, b"k", b"v")  # type: ignore[arg-type]


def test_sends_are_not_held_until_commit() -> None:
    # Topic.send then returns a future resolved by the broker's acknowledgement.
    assert app.conf.stream_publish_on_commit is False


def test_the_consumer_flushes_the_producer_before_committing() -> None:
    source = inspect.getsource(Consumer._commit_offsets)
    assert source.index("await self.app.producer.flush()") < source.index("await self._commit(")


def test_the_worker_runs_on_uvloop() -> None:
    import asyncio

    import uvloop

    assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
