"""A consumed partition's transactional producer (app.runtime.transactions): one per partition,
however many ask for it at once, since a second one of the same transactional.id would fence
the first; a batch's commit runs on while the next batches are processed, in order within a
table partition."""

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
        self.commits: asyncio.Queue[BaseException | None] | None = None  # the broker's answers

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
        if self.commits is not None:
            answer = await self.commits.get()
            if answer is not None:
                raise answer
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
PAIRS0 = TP("pairs", 0)  # the same table partition as TP0


def unexpected(failure: TransactionFailed) -> None:
    raise AssertionError(f"no commit was to fail: {failure!r}")


def transactions() -> tuple[Transactions, AppProducer]:
    app_producer = AppProducer()
    return Transactions("fraud", lambda: app_producer), app_producer  # type: ignore[arg-type,return-value]


async def test_concurrent_requests_start_one_producer_per_partition() -> None:
    txns, app_producer = transactions()

    async def batch() -> None:
        async with txns.batch(TP0, 10, unexpected):
            assert app_producer.transaction is app_producer.started[0]
        await txns.settle()

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
        async with txns.batch(TP0, 1, unexpected):
            pass
    async with txns.batch(TP0, 2, unexpected):
        pass
    await txns.settle(TP0.partition)
    assert len(app_producer.started) == 2
    assert app_producer.started[1].calls[-1] == "commit"


async def test_a_failing_batch_aborts_its_transaction() -> None:
    txns, app_producer = transactions()
    with pytest.raises(ValueError):
        async with txns.batch(TP0, 1, unexpected):
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


async def test_a_commit_runs_on_while_the_next_partition_s_batch_is_processed() -> None:
    txns, app_producer = transactions()
    await txns.assign([TP0, TP1])
    first, second = app_producer.started
    first.commits, second.commits = asyncio.Queue(), asyncio.Queue()
    async with txns.batch(TP0, 10, unexpected):
        pass
    async with txns.batch(TP1, 20, unexpected):  # TP0's commit still waits for the broker
        assert app_producer.transaction is second
        await asyncio.sleep(0.01)  # the detector's turn
    assert first.calls == ["begin", "offsets [10] fraud"]
    second.commits.put_nowait(None)
    first.commits.put_nowait(None)
    await txns.settle()
    assert first.calls[-1] == second.calls[-1] == "commit"


async def test_a_batch_of_the_same_table_partition_waits_for_the_last_commit() -> None:
    txns, app_producer = transactions()
    await txns.assign([TP0, PAIRS0])
    first, _ = app_producer.started
    first.commits = asyncio.Queue()
    async with txns.batch(TP0, 10, unexpected):
        pass
    began = asyncio.Event()

    async def next_batch() -> None:
        async with txns.batch(PAIRS0, 5, unexpected):
            began.set()

    following = asyncio.ensure_future(next_batch())
    await asyncio.sleep(0.05)
    assert not began.is_set()  # its changelog records would land before the first batch's
    first.commits.put_nowait(None)
    await following
    assert began.is_set() and first.calls[-1] == "commit"


async def test_a_commit_that_fails_is_reported_and_marks_the_tables_ahead() -> None:
    txns, app_producer = transactions()
    await txns.assign([TP0])
    app_producer.started[0].commits = asyncio.Queue()
    failures: list[TransactionFailed] = []
    async with txns.batch(TP0, 10, failures.append):
        pass
    assert not txns.failed
    app_producer.started[0].commits.put_nowait(KafkaConnectionError("gone"))
    await txns.settle()
    assert [str(f) for f in failures] == ["transactions/0: KafkaConnectionError('gone')"]
    assert isinstance(failures[0].__cause__, KafkaConnectionError)
    assert app_producer.started[0].calls[-1] == "abort"
    assert txns.failed  # a stop leaves no clean-stop mark (app.app)


async def test_a_revocation_waits_for_the_commits_running_on() -> None:
    txns, app_producer = transactions()
    await txns.assign([TP0])
    producer = app_producer.started[0]
    producer.commits = asyncio.Queue()
    async with txns.batch(TP0, 10, unexpected):
        pass
    revoking = asyncio.ensure_future(txns.revoke([TP0]))
    await asyncio.sleep(0.05)
    assert "stop" not in producer.calls
    producer.commits.put_nowait(None)
    await revoking
    assert producer.calls[-2:] == ["commit", "stop"]
