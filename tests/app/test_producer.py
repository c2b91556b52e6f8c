"""The producer's flush waits for every record handed to it (app.runtime.producer)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.runtime.producer import DeliveringProducer


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
