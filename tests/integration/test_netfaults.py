"""The test's network faults (tests/integration/netfaults.py) against the real broker: a client
that bootstraps through its proxy sends everything across it; a cut holds its requests until the
link heals; a slow or lossy link delivers every byte, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaProducer
from localkafka import LocalKafka, free_ports

from tests.conftest import TopicFactory, running
from tests.integration.kafka_io import produce, read_until
from tests.integration.netfaults import Link, Proxy


def test_a_slow_link_holds_each_chunk_within_its_delay_and_jitter() -> None:
    link = Link(seed=1)
    link.delay_s, link.jitter_s = 0.2, 0.1
    held = [link.hold_s() for _ in range(1000)]
    assert 0.1 <= min(held) < 0.12 and 0.28 < max(held) <= 0.3


def test_a_lossy_link_resends_a_lost_chunk_after_a_doubling_timeout() -> None:
    link = Link(seed=1)
    link.loss, link.rto_s = 0.1, 0.2
    held = [link.hold_s() for _ in range(10_000)]
    assert 0.87 < held.count(0.0) / len(held) < 0.93  # 10 % lost once or more
    assert {0.2, 0.6, 1.4} <= set(round(h, 3) for h in held)  # resent after 0.2, 0.2+0.4, ...


async def test_a_cut_holds_a_client_s_requests_until_the_link_heals(tmp_path: Path) -> None:
    port, controller, listener, shown = free_ports(4)
    broker = LocalKafka(tmp_path / "kafka", port, controller, proxied=[(listener, shown)])
    with running(broker):
        link = Proxy(shown, listener).start()
        try:
            topic = TopicFactory(broker.bootstrap).create(partitions=1)["transactions"]
            through = f"127.0.0.1:{shown}"
            producer = AIOKafkaProducer(bootstrap_servers=through, acks="all")
            await producer.start()
            try:
                # the broker is known by the proxy's port only: nothing goes around the link
                assert {b.port for b in producer.client.cluster.brokers()} == {shown}
                link.cut()
                sent = asyncio.ensure_future(producer.send_and_wait(topic, b"held"))
                done, _ = await asyncio.wait([sent], timeout=3)
                assert not done, "a record crossed a cut link"
                link.heal()
                await asyncio.wait_for(sent, 30)
            finally:
                await producer.stop()
            link.slow(0.02, 0.01)
            link.lossy(0.2, rto_s=0.05)
            values = [str(i).encode() for i in range(300)]
            await produce(through, topic, [(None, v) for v in values])
            link.heal()
            got = await read_until(
                broker.bootstrap, topic, lambda r: len(r) >= 301, timeout=30, what="301 records"
            )
            assert [r.value for r in got] == [b"held", *values]
        finally:
            link.stop()
