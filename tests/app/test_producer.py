"""The producer's flush waits for every record handed to it, and a transactional producer
survives a coordinator lookup whose connection closes (app.runtime.producer)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.client import CoordinationType
from aiokafka.errors import KafkaConnectionError, KafkaError, TransactionalIdAuthorizationFailed

from app.runtime.producer import (
    CoordinatorRetryingSender,
    DeliveringProducer,
    TransactionalProducer,
)


class Buffer:
    """Faust's producer buffer as its flush behaves under load: it gives up, records left."""

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[Any]] = []

    def put(self, fut: asyncio.Future[Any]) -> None:
        self.waiting.append(fut)

    async def flush(self) -> None:
        await asyncio.sleep(0)


def bare_producer() -> tuple[DeliveringProducer, Buffer]:
    producer = object.__new__(DeliveringProducer)
    buffer = Buffer()
    attrs = {
        "unacknowledged": set(), "buffer": buffer, "request_timeout": 30.0,
        "_producer": None, "_transaction_producers": {},
        "_stopped": asyncio.Event(), "_crashed": asyncio.Event(),  # mode's should_stop
    }  # fmt: skip
    vars(producer).update(attrs)
    return producer, buffer


async def test_a_flush_returns_once_every_record_handed_over_is_acknowledged() -> None:
    producer, buffer = bare_producer()
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    producer.send_soon(first)  # type: ignore[arg-type]
    producer.send_soon(second)  # type: ignore[arg-type]
    assert buffer.waiting == [first, second]
    flush = asyncio.ensure_future(producer.flush())
    await asyncio.sleep(0.05)
    assert not flush.done()  # Faust's own flush has returned; the records have not gone out
    first.set_result(None)
    await asyncio.sleep(0.01)
    assert not flush.done()
    second.set_exception(RuntimeError("refused"))  # a failure ends the wait too (SendFailures)
    await asyncio.wait_for(flush, timeout=1)
    assert producer.unacknowledged == set()


async def test_a_record_handed_over_during_the_flush_is_not_waited_for() -> None:
    # a commit covers the records processed before it: later ones belong to later offsets
    producer, _ = bare_producer()
    late: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def flush_with_a_send() -> None:
        producer.send_soon(late)  # type: ignore[arg-type]

    producer.buffer.flush = flush_with_a_send  # type: ignore[method-assign]
    await asyncio.wait_for(producer.flush(), timeout=1)
    assert producer.unacknowledged == {late}


async def test_a_stopping_producer_does_not_wait() -> None:
    # its buffer may send nothing more; the stop's clean-stop check counts what is left
    producer, _ = bare_producer()
    producer.send_soon(asyncio.get_running_loop().create_future())  # type: ignore[arg-type]
    producer._stopped.set()
    await asyncio.wait_for(producer.flush(), timeout=1)
    assert len(producer.unacknowledged) == 1


class Client:
    """aiokafka's client as a restarting broker answers a coordinator lookup: the first
    ``failures`` lookups fail with ``error``."""

    def __init__(self, failures: int, error: type[KafkaError] = KafkaConnectionError) -> None:
        self.failures, self.error = failures, error
        self.lookups = 0

    async def coordinator_lookup(self, coordinator_type: Any, key: str) -> int:
        self.lookups += 1
        if self.lookups <= self.failures:
            raise self.error("Connection at 127.0.0.1:9092 closed")
        return 1

    async def ready(self, node_id: int, group: Any = None) -> bool:
        return True

    async def force_metadata_update(self) -> bool:
        return False


class Manager:
    transactional_id = "fraud-t-0"


def sender(client: Client, request_timeout_ms: int = 30_000) -> CoordinatorRetryingSender:
    return CoordinatorRetryingSender(
        client, acks=-1, txn_manager=Manager(), message_accumulator=None,
        retry_backoff_ms=1, request_timeout_ms=request_timeout_ms,
    )  # fmt: skip


async def test_a_coordinator_lookup_whose_connection_closes_is_retried() -> None:
    client = Client(failures=3)
    assert await sender(client)._find_coordinator(CoordinationType.TRANSACTION, "fraud-t-0") == 1
    assert client.lookups == 4


async def test_a_lookup_refused_for_good_fails_at_once() -> None:
    client = Client(failures=1, error=TransactionalIdAuthorizationFailed)
    with pytest.raises(TransactionalIdAuthorizationFailed):
        await sender(client)._find_coordinator(CoordinationType.TRANSACTION, "fraud-t-0")
    assert client.lookups == 1


async def test_lookups_that_keep_failing_give_up_after_the_request_timeout() -> None:
    client = Client(failures=10**9)
    with pytest.raises(KafkaError, match="closed"):
        await sender(client, request_timeout_ms=50)._find_coordinator(
            CoordinationType.TRANSACTION, "fraud-t-0"
        )
    assert 1 < client.lookups < 10**9


async def test_a_transactional_producer_sends_through_the_retrying_sender() -> None:
    producer = TransactionalProducer(
        bootstrap_servers="127.0.0.1:9", transactional_id="fraud-t-0", enable_idempotence=True,
        acks="all", retry_backoff_ms=20, request_timeout_ms=5_000,
    )  # fmt: skip
    made = producer._sender
    assert isinstance(made, CoordinatorRetryingSender)
    assert (made._retry_backoff, made._request_timeout_ms) == (0.02, 5_000)
    assert made._txn_manager is producer._txn_manager
    assert made._message_accumulator is producer._message_accumulator
    await producer.stop()  # never started: nothing to stop but the client
