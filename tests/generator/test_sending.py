"""The send side without a broker: pacing, the send loop, and the stdout sink."""

from __future__ import annotations

import asyncio
import io

from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from generator import GeneratorConfig, Record, generate
from generator.pacing import TokenBucket
from generator.runner import RunStats, run
from generator.sink import KafkaSink, StdoutSink


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_token_bucket_grants_the_rate_over_time() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5000, clock=clock)
    granted = bucket.take(10**9)  # the first record goes at once
    for _ in range(2000):  # 2 s in uneven steps, as an event loop wakes up
        clock.now += 0.0007 if clock.now * 1000 % 3 < 1 else 0.0013
        granted += bucket.take(10**9)
    assert abs(granted - 5000 * clock.now) <= 2


def test_the_token_bucket_does_not_catch_up_after_a_stall() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock)
    bucket.take(10**9)
    clock.now += 5.0  # the process was stopped for 5 s
    assert bucket.take(10**9) == 100  # one burst of 0.1 s, not 5000 records
    assert bucket.take(10**9) == 0
    assert abs(bucket.wait_seconds() - 0.001) < 1e-9


class ListSink:
    def __init__(self) -> None:
        self.sent: list[Record] = []
        self.flushed = 0
        self.acknowledged = 0

    def describe(self) -> str:
        return "a list"

    async def start(self) -> None:
        return None

    async def send(self, record: Record) -> None:
        self.sent.append(record)

    async def flush(self) -> None:
        self.flushed += 1
        self.acknowledged = len(self.sent)

    async def stop(self) -> None:
        return None


async def test_the_loop_sends_every_record_then_flushes() -> None:
    cfg = GeneratorConfig(count=5000, scenarios=2, malformed=0.05, seed=9)
    sink, stats, seen = ListSink(), RunStats(), list[Record]()
    await run(generate(cfg), sink, rate=0, stop=asyncio.Event(), stats=stats, on_record=seen.append)
    assert sink.sent == list(generate(cfg)) == seen
    assert sink.flushed == 1
    assert stats.produced == 5000
    assert stats.kinds["malformed"] == sum(r.kind == "malformed" for r in sink.sent)
    assert len(stats.structuring) == 2


async def test_a_paced_loop_keeps_its_rate() -> None:
    sink, stats = ListSink(), RunStats()
    cfg = GeneratorConfig(count=300)
    await run(generate(cfg), sink, rate=1000, stop=asyncio.Event(), stats=stats)
    assert len(sink.sent) == 300
    assert stats.elapsed() >= 0.29  # 300 records at 1000/s cannot take less than 0.3 s


async def test_the_loop_stops_when_asked_and_still_flushes() -> None:
    sink, stop = ListSink(), asyncio.Event()
    stop.set()
    await run(generate(GeneratorConfig()), sink, rate=0, stop=stop, stats=RunStats())
    assert sink.sent == []
    assert sink.flushed == 1


async def test_the_stdout_sink_writes_one_line_per_value() -> None:
    out = io.BytesIO()
    sink = StdoutSink(out)
    records = list(generate(GeneratorConfig(count=3000, malformed=0.1)))
    for record in records:
        await sink.send(record)
    await sink.flush()
    assert out.getvalue() == b"".join(r.value + b"\n" for r in records)
    assert sink.acknowledged == 3000


class FakeProducer:
    """Stands in for AIOKafkaProducer: small batches, delivered at once, kept for inspection."""

    PARTITIONS = 8

    def __init__(self, **config: object) -> None:
        self.config = config
        self.batches: list[tuple[int, bytes]] = []
        self.single: list[tuple[bytes | None, bytes]] = []

    async def start(self) -> None:
        return None

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.PARTITIONS))

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(2048, 0)  # small, so batches fill and rotate often

    async def send_batch(
        self, batch: BatchBuilder, topic: str, *, partition: int
    ) -> asyncio.Future[None]:
        self.batches.append((partition, bytes(batch._build())))
        return self._delivered()

    async def send(self, topic: str, value: bytes, key: bytes | None) -> asyncio.Future[None]:
        self.single.append((key, value))
        return self._delivered()

    def _delivered(self) -> asyncio.Future[None]:
        delivery = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery

    async def flush(self) -> None:
        await asyncio.sleep(0)  # let the delivery callbacks run

    async def stop(self) -> None:
        return None


async def test_bulk_sending_delivers_every_record_once_on_the_java_partition() -> None:
    producers: list[FakeProducer] = []

    def factory(**config: object) -> FakeProducer:
        producers.append(FakeProducer(**config))
        return producers[-1]

    sink = KafkaSink("fake:9092", "transactions", bulk=True, producer_factory=factory)
    await sink.start()
    # malformed records are unkeyed: keyed and sticky unkeyed records share partitions
    cfg = GeneratorConfig(count=20_000, malformed=0.2, scenarios=3, seed=4)
    records = list(generate(cfg))
    await run(iter(records), sink, rate=0, stop=asyncio.Event(), stats=RunStats())
    (producer,) = producers
    assert producer.config["acks"] == "all"
    assert producer.config["enable_idempotence"] is True
    landed = [
        (partition, r.key, r.value)
        for partition, buffer in producer.batches
        for r in DefaultRecordBatch(buffer)
    ]
    assert sorted((k or b"", v) for _, k, v in landed) == sorted(
        (r.key or b"", r.value) for r in records
    )
    assert sink.acknowledged == len(records)
    for partition, key, _ in landed:
        if key is not None:
            assert partition == (murmur2(key) & 0x7FFFFFFF) % FakeProducer.PARTITIONS
    per_key_order = [v for _, k, v in landed if k == records[0].key]
    assert per_key_order == [r.value for r in records if r.key == records[0].key]
    assert len({p for p, k, _ in landed if k is None}) > 1  # unkeyed records move on


async def test_paced_sending_hands_each_record_to_the_producer() -> None:
    producer = FakeProducer()
    sink = KafkaSink("fake:9092", "transactions", producer_factory=lambda **_: producer)
    await sink.start()
    records = list(generate(GeneratorConfig(count=300, keyed=False)))
    await run(iter(records), sink, rate=5000, stop=asyncio.Event(), stats=RunStats())
    assert producer.single == [(None, r.value) for r in records]
    assert sink.acknowledged == 300
