"""A consumed partition's transactional producer (app.runtime.transactions): one per partition,
however many ask for it at once, since a second one of the same transactional.id would fence
the first."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from faust.types import TP

from app.errors import TransactionFailed
from app.runtime.transactions import Transactions, ended_by


class FakeProducer:
    def __init__(self, transactional_id: str, fail: bool) -> None:
        self.transactional_id = transactional_id
        self.fail = fail
        self.calls: list[str] = []

    async def start(self) -> None:
        await asyncio.sleep(0.01)  # InitProducerId: others ask meanwhile
        if self.fail:
            raise KafkaConnectionError("broker unreachable")

    async def stop(self) -> None:
        self.calls.append("stop")

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def send_offsets_to_transaction(self, offsets: Any, group: str) -> None:
        self.calls.append(f"offsets {list(offsets.values())} {group}")

    async def commit_transaction(self) -> None:
        self.calls.append("commit")

    async def abort_transaction(self) -> None:
        self.calls.append("abort")


class AppProducer:
    def __init__(self) -> None:
        self.started: list[FakeProducer] = []
        self.failing = 0  # the next starts that fail
        self.transaction: Any = None

    def _new_producer(self, transactional_id: str) -> FakeProducer:
        self.started.append(FakeProducer(transactional_id, fail=self.failing > 0))
        self.failing -= 1
        return self.started[-1]


TP0, TP1 = TP("transactions", 0), TP("transactions", 1)


def transactions() -> tuple[Transactions, AppProducer]:
    app_producer = AppProducer()
    return Transactions("fraud", lambda: app_producer), app_producer  # type: ignore[arg-type,return-value]


async def test_concurrent_requests_start_one_producer_per_partition() -> None:
    txns, app_producer = transactions()

    async def batch() -> None:
        async with txns.batch(TP0, 10):
            assert app_producer.transaction is app_producer.started[0]

    await asyncio.gather(txns.assign([TP0, TP1]), txns.assign([TP0, TP1]), batch())
    assert sorted(p.transactional_id for p in app_producer.started) == [
        "fraud-transactions-0",
        "fraud-transactions-1",
    ]
    assert app_producer.started[0].calls == ["begin", "offsets [10] fraud", "commit"]
    assert app_producer.transaction is None


async def test_a_failed_start_fails_the_batch_and_the_next_one_starts_again() -> None:
    txns, app_producer = transactions()
    app_producer.failing = 1
    with pytest.raises(TransactionFailed):
        async with txns.batch(TP0, 1):
            pass
    async with txns.batch(TP0, 2):
        pass
    assert len(app_producer.started) == 2
    assert app_producer.started[1].calls[-1] == "commit"


async def test_a_failing_batch_aborts_its_transaction() -> None:
    txns, app_producer = transactions()
    with pytest.raises(ValueError):
        async with txns.batch(TP0, 1):
            raise ValueError("the detector failed")
    assert app_producer.started[0].calls == ["begin", "abort"]


async def test_a_fenced_producer_s_failure_names_the_fencing() -> None:
    # the broker's answer to a send ended the transaction; the next send is refused as "not
    # in transaction": the failure names the first error
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import ProducerFenced

    producer = AIOKafkaProducer(transactional_id="fraud-transactions-0")
    try:
        manager = producer._txn_manager
        manager.set_pid_and_epoch(1, 0)  # InitProducerId answered
        manager.begin_transaction()
        manager.error_transaction(ProducerFenced())
        assert isinstance(ended_by(producer), ProducerFenced)
    finally:
        await producer.stop()
    assert ended_by(None) is None


async def test_revoked_partitions_stop_their_producers() -> None:
    txns, app_producer = transactions()
    await txns.assign([TP0, TP1])
    await txns.revoke([TP0])
    assert [p.calls for p in app_producer.started] == [["stop"], []]
    await txns.stop()
    assert [p.calls for p in app_producer.started] == [["stop"], ["stop"]]
    assert txns.producers == {}
