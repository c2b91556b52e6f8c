"""Faust's producer, with a flush that waits for every record handed to it.

The consumer flushes the producer before it commits offsets: that is what makes the table's
changelog a prefix of the committed input. But Faust's flush gives up on its own buffer after
0.1 s without a send (``ProducerBuffer.flush_atmost``), and under load a send waits longer than
that for room in aiokafka's batches. The consumer then commits offsets past table changelog
records still in that buffer, and a kill -9 loses them: seen in the kill -9 fault test, a
changelog partition held 68 records while the committed input of its partition was some 600
transactions further, and the pairs of those transactions never alerted. This producer keeps
every record given to ``send_soon`` (table changelogs, dead letters, ticks) until the broker
acknowledges or refuses it (app.app.SendFailures then stops the worker), and its flush waits for
them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.drivers import aiokafka as driver
from faust.types import FutureMessage


class DeliveringProducer(driver.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unacknowledged: set[asyncio.Future[Any]] = set()

    def send_soon(self, fut: FutureMessage) -> None:
        self.unacknowledged.add(fut)
        fut.add_done_callback(self.unacknowledged.discard)
        super().send_soon(fut)

    async def flush(self) -> None:
        """Faust's flush, then a wait for every record handed over before it (bounded by the
        request timeout, after which aiokafka has failed what it could not deliver)."""
        handed = set(self.unacknowledged)
        await super().flush()
        if handed and not self.should_stop:  # stopping, its buffer may send nothing more
            await asyncio.wait(handed, timeout=self.request_timeout)
