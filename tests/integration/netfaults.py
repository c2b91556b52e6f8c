"""Network faults between one worker and the broker: a TCP proxy on 127.0.0.1 that the test
controls.

The broker gets one listener per proxied worker (``LocalKafka(..., proxied={name: port})``),
advertised at the proxy's port: a worker that bootstraps through its proxy is told the broker is
there, so all its connections, group coordinator and fetches included, go through the proxy.

The proxy runs in a thread of its own (the tests block on processes while a fault lasts):
- ``cut()``: a partition. Bytes stop flowing both ways on every connection, and new
  connections are accepted but carry nothing, as packets into a dead link: nothing is refused or
  reset, the client only sees silence until its own timeouts. ``heal()`` lets everything held
  flow again, in order.
- ``slow(delay_s, jitter_s)``: each chunk is held ``delay_s`` ± ``jitter_s`` (order kept).
- ``lossy(loss, rto_s)``: a chunk is lost with probability ``loss`` and resent after a TCP
  retransmission timeout (``rto_s``, doubled on each loss in a row), as TCP does: the stream
  stays whole and in order, it stalls. A TCP proxy cannot drop bytes of a stream, so the loss is
  shown by its effect; the kernel's ``netem`` is not in this machine's kernel.
- ``heal()``: back to a clean link.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Coroutine
from typing import Any

HOST = "127.0.0.1"
CHUNK = 65536


class Link:
    """The state of a link, read by every connection of one proxy on each chunk."""

    def __init__(self, seed: int) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.delay_s = 0.0
        self.jitter_s = 0.0
        self.loss = 0.0
        self.rto_s = 0.2
        self.rng = random.Random(seed)

    def hold_s(self) -> float:
        """How long the next chunk is held before it goes out."""
        held = self.delay_s + (
            self.rng.uniform(-self.jitter_s, self.jitter_s) if self.jitter_s else 0
        )
        rto = self.rto_s
        while self.loss and self.rng.random() < self.loss:
            held += rto  # lost, resent after the retransmission timeout, which then doubles
            rto *= 2
        return max(0.0, held)


class Proxy:
    """Forwards ``listen_port`` on 127.0.0.1 to ``target_port``, with the link's faults."""

    def __init__(self, listen_port: int, target_port: int, seed: int = 0) -> None:
        self.listen_port, self.target_port = listen_port, target_port
        self._seed = seed
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._link: Link | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> Proxy:
        self._thread.start()
        self._call(self._serve())
        return self

    def stop(self) -> None:
        """Close the listener and every connection; the thread ends."""
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def cut(self) -> None:
        async def close() -> None:
            assert self._link is not None
            self._link.open.clear()

        self._call(close())

    def slow(self, delay_s: float, jitter_s: float = 0.0) -> None:
        self._set(delay_s=delay_s, jitter_s=jitter_s)

    def lossy(self, loss: float, rto_s: float = 0.2) -> None:
        self._set(loss=loss, rto_s=rto_s)

    def heal(self) -> None:
        self._set(delay_s=0.0, jitter_s=0.0, loss=0.0)
        self._call(self._open())

    def _set(self, **values: float) -> None:
        async def apply() -> None:
            for name, value in values.items():
                setattr(self._link, name, value)

        self._call(apply())

    async def _open(self) -> None:
        assert self._link is not None
        self._link.open.set()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _serve(self) -> None:
        self._link = Link(self._seed)
        self._server = await asyncio.start_server(self._accept, HOST, self.listen_port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None and self._link is not None
        self._tasks.add(task)
        link = self._link
        try:
            await link.open.wait()  # a connection made during a cut carries nothing until healed
            try:
                up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
            except OSError:
                return  # the broker is down: the client sees its connection closed
            await asyncio.gather(
                _pipe(link, reader, up_writer),
                _pipe(link, up_reader, writer),
                return_exceptions=True,
            )
            up_writer.close()
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pipe(link: Link, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy one direction, each chunk held as the link says, in order; close ``sink`` at the end."""
    due = 0.0
    try:
        while data := await source.read(CHUNK):
            due = max(due, time.monotonic() + link.hold_s())  # never overtakes an earlier chunk
            while True:
                await link.open.wait()
                wait = due - time.monotonic()
                if wait <= 0:
                    break
                await asyncio.sleep(min(wait, 0.05))
            sink.write(data)
            await sink.drain()
        await link.open.wait()  # the end of a stream crosses the link like its bytes
    finally:
        sink.close()
