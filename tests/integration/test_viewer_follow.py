"""The viewer against the real broker: all partitions, start position, transactions, new partitions,
the dead-letter topic next to the alerts, and the bounded reads of fraud-verify.

Alert records are written here directly (not by the worker), so each test controls duplicates,
order and partitions exactly; the worker's own records are covered by the pipeline tests.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from contextlib import aclosing, suppress
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from localkafka import LocalKafka, create_topics

from tests.conftest import TopicFactory
from tests.viewer.records import ALERT_ID, alert_record
from viewer.follow import CaughtUp, Fetched, fetch_timestamps, follow, read_to_end

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0

Record = tuple[int | None, dict[str, object]]
"""(partition or None for the key's partition, alert record)."""


async def produce(bootstrap: str, topic: str, records: Iterable[Record]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, record in records:
            key = str(record.get("alert_id", "")).encode()
            await producer.send_and_wait(topic, orjson.dumps(record), key=key, partition=partition)
    finally:
        await producer.stop()


class Follower:
    """Runs :func:`viewer.follow.follow` in a task and collects alert ids until told to stop."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        from_beginning: bool,
        refresh_s: float = 30.0,
        also: tuple[str, ...] = (),
    ) -> None:
        self.seen: list[str] = []
        self.topics: list[str] = []
        self.caught_up_after: int | None = None
        self.warnings: list[str] = []
        records = follow(
            bootstrap,
            topic,
            from_beginning=from_beginning,
            warn=self.warnings.append,
            refresh_s=refresh_s,
            also=also,
        )
        self._task = asyncio.create_task(self._collect(records))

    async def _collect(self, records: AsyncGenerator[Fetched, None]) -> None:
        async with aclosing(records):
            async for record in records:
                if isinstance(record, CaughtUp):
                    assert self.caught_up_after is None, "caught up twice"
                    self.caught_up_after = len(self.seen)
                    continue
                assert record.value is not None
                document = orjson.loads(record.value)
                self.seen.append(str(document.get("alert_id", document.get("reason"))))
                self.topics.append(record.topic)

    async def wait_for(
        self,
        done: Callable[[list[str]], bool],
        what: str,
        nudge: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Poll until ``done(seen)``, awaiting ``nudge()`` (e.g. write a record) between polls."""
        deadline = time.monotonic() + DEADLINE_S
        while not done(self.seen):
            if self._task.done():
                self._task.result()  # re-raise what stopped the follower
                raise AssertionError("the follower stopped early")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {DEADLINE_S:g}s waiting for {what}; saw {self.seen}, "
                    f"warnings {self.warnings}"
                )
            if nudge is not None:
                await nudge()
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task


async def test_cli_shows_each_window_once_and_skips_a_bad_record(
    kafka: LocalKafka, topics: TopicFactory
) -> None:
    topic = topics.create(partitions=8, fraud="fraud")["fraud"]
    other = "7:8:1500771600000"
    await produce(
        kafka.bootstrap,
        topic,
        # One partition, so the order below is the order the viewer reads.
        [
            (0, alert_record("threshold_crossed")),
            (0, alert_record("threshold_crossed")),  # at-least-once duplicate
            (0, {"schema": 1, "kind": "window_closed"}),  # no alert_id: skipped
            (0, alert_record("window_closed")),
            (0, alert_record("threshold_crossed")),  # late duplicate: status stays closed
            (0, alert_record("window_closed", alert_id=other, sender="7", receiver="8")),
        ],
    )

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "viewer",
        "--bootstrap",
        kafka.bootstrap,
        "--topic",
        topic,
        "--from-beginning",
        "--windows",
        "--max-alerts",
        "2",
        "--timeout",
        str(DEADLINE_S),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()

    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    # A backlog read --from-beginning is shown settled: each window once, as it stands.
    assert [(line.split()[1], line.split("id=")[1]) for line in lines] == [
        ("CLOSED", "66:26:1500771600000"),
        ("CLOSED", other),
    ]
    assert lines[0].endswith("total $12,000.50 (7 tx) id=66:26:1500771600000")
    assert err.decode().splitlines() == [
        f"fraud-viewer: skipped record {topic}[0]@2: missing field 'alert_id'"
    ]


async def test_every_partition_is_followed(kafka: LocalKafka, topics: TopicFactory) -> None:
    topic = topics.create(partitions=8, fraud="fraud")["fraud"]
    ids = [f"66:26:{number}" for number in range(8)]
    await produce(
        kafka.bootstrap,
        topic,
        [(number, alert_record(alert_id=ids[number])) for number in range(8)],
    )

    follower = Follower(kafka.bootstrap, topic, from_beginning=True)
    try:
        await follower.wait_for(lambda seen: set(seen) == set(ids), "one alert per partition")
    finally:
        await follower.stop()

    assert follower.caught_up_after == 8  # after the backlog, not before, and once


async def test_by_default_only_alerts_written_after_the_start_are_shown(
    kafka: LocalKafka, topics: TopicFactory
) -> None:
    topic = topics.create(partitions=8, fraud="fraud")["fraud"]
    await produce(kafka.bootstrap, topic, [(None, alert_record(alert_id="old:1:0"))])
    written = 0

    async def write_a_new_alert() -> None:
        # The follower's seek to the end happens in its task: keep writing until it shows one.
        nonlocal written
        written += 1
        await produce(kafka.bootstrap, topic, [(None, alert_record(alert_id=f"new:1:{written}"))])

    follower = Follower(kafka.bootstrap, topic, from_beginning=False)
    try:
        await follower.wait_for(bool, "a new alert", nudge=write_a_new_alert)
    finally:
        await follower.stop()

    assert "old:1:0" not in follower.seen
    assert all(alert_id.startswith("new:") for alert_id in follower.seen)
    assert follower.caught_up_after == 0  # from the end there is no backlog


async def test_records_of_an_aborted_transaction_are_never_shown(
    kafka: LocalKafka, topics: TopicFactory
) -> None:
    topic = topics.create(partitions=1, fraud="fraud")["fraud"]
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap, transactional_id=f"viewer-test-{topic}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(
                topic, orjson.dumps(alert_record(alert_id="committed:1:0"))
            )
        await producer.begin_transaction()
        await producer.send_and_wait(topic, orjson.dumps(alert_record(alert_id="aborted:1:0")))
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(
                topic, orjson.dumps(alert_record(alert_id="committed:1:1"))
            )
    finally:
        await producer.stop()

    follower = Follower(kafka.bootstrap, topic, from_beginning=True)
    try:
        # The aborted record sits between the two committed ones in the log.
        await follower.wait_for(lambda seen: "committed:1:1" in seen, "the second commit")
    finally:
        await follower.stop()

    assert follower.seen == ["committed:1:0", "committed:1:1"]


async def test_partitions_added_while_following_are_followed(
    kafka: LocalKafka, topics: TopicFactory
) -> None:
    topic = topics.create(partitions=2, fraud="fraud")["fraud"]
    follower = Follower(kafka.bootstrap, topic, from_beginning=False, refresh_s=0.5)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        # Let the follower position itself on the two partitions before the topic grows.
        await follower.wait_for(
            bool,
            "an alert on an old partition",
            nudge=lambda: produce(kafka.bootstrap, topic, [(1, alert_record(alert_id="p1:1:0"))]),
        )
        await admin.create_partitions({topic: NewPartitions(total_count=4)})
        await produce(kafka.bootstrap, topic, [(3, alert_record(alert_id="p3:1:0"))])

        await follower.wait_for(lambda seen: "p3:1:0" in seen, "the alert on new partition 3")
    finally:
        await admin.close()
        await follower.stop()

    assert any("new partition" in warning for warning in follower.warnings)


async def test_cli_shows_cases_by_default(kafka: LocalKafka, topics: TopicFactory) -> None:
    topic = topics.create(partitions=8, fraud="fraud")["fraud"]
    windows = [f"66:26:{start}" for start in (1500771480000, 1500771600000)]
    # Each window on its own partition, as the worker's keying by alert_id spreads them.
    await produce(
        kafka.bootstrap,
        topic,
        [
            (number, alert_record(kind, alert_id=alert_id))
            for kind in ("threshold_crossed", "window_closed")
            for number, alert_id in enumerate(windows)
        ],
    )

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "viewer", "--bootstrap", kafka.bootstrap, "--topic", topic),
        *("--from-beginning", "--max-alerts", "2", "--timeout", str(DEADLINE_S), "--json"),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()

    assert process.returncode == 0, err.decode()
    (case,) = [orjson.loads(line) for line in out.decode().splitlines()]
    # --max-alerts stopped inside the backlog at the second window: the case is shown once,
    # with both windows, whichever partition the follower read first.
    assert (case["case_id"], case["alert_ids"], case["replaces"]) == (windows[0], windows, [])


async def test_the_dead_letter_topic_is_followed_too_once_it_exists(
    kafka: LocalKafka, topics: TopicFactory
) -> None:
    names = topics.create(partitions=2, fraud="fraud")
    fraud, dlq = names["fraud"], f"dlq-{names['fraud']}"
    follower = Follower(kafka.bootstrap, fraud, from_beginning=True, refresh_s=0.5, also=(dlq,))
    try:
        await follower.wait_for(
            lambda seen: any("does not exist (yet)" in w for w in follower.warnings) or bool(seen),
            "the warning about the missing dead-letter topic",
        )
        create_topics(kafka.bootstrap, {dlq: 2})
        await produce(kafka.bootstrap, dlq, [(1, {"schema": 1, "reason": "late"})])
        await produce(kafka.bootstrap, fraud, [(0, alert_record())])

        await follower.wait_for(lambda seen: {"late", ALERT_ID} <= set(seen), "both records")
    finally:
        await follower.stop()

    assert follower.topics[follower.seen.index("late")] == dlq
    assert any(f"following 2 new partition(s) of '{dlq}'" in w for w in follower.warnings)


async def test_read_to_end_stops_where_the_topic_ended_and_reports_progress(
    kafka: LocalKafka, topics: TopicFactory
) -> None:
    topic = topics.create(partitions=3, fraud="fraud")["fraud"]
    await produce(
        kafka.bootstrap,
        topic,
        [(number % 2, alert_record(alert_id=f"a:b:{number}")) for number in range(10)],
    )
    steps: list[tuple[int, int]] = []

    records = read_to_end(
        kafka.bootstrap, topic, warn=pytest.fail, progress=lambda *step: steps.append(step)
    )
    async with aclosing(records):
        seen = [record async for record in records]

    assert sorted(record.offset for record in seen if record.partition == 0) == [0, 1, 2, 3, 4]
    assert len(seen) == 10
    assert steps[0] == (0, 10) and steps[-1] == (10, 10)


async def test_fetch_timestamps_finds_records_by_partition_and_offset(
    kafka: LocalKafka, topics: TopicFactory
) -> None:
    topic = topics.create(partitions=2, transactions="transactions")["transactions"]
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        written = {}
        for number in range(6):
            stamp = 1_700_000_000_000 + number * 1000
            meta = await producer.send_and_wait(
                topic, b"x", partition=number % 2, timestamp_ms=stamp
            )
            written[(meta.partition, meta.offset)] = stamp
    finally:
        await producer.stop()

    wanted = [(0, 1), (1, 2), (1, 0), (0, 99), (7, 0)]  # the last two do not exist
    found = await fetch_timestamps(kafka.bootstrap, topic, wanted, warn=pytest.fail)

    assert found == {key: written[key] for key in [(0, 1), (1, 2), (1, 0)]}
