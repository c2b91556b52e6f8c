"""The detector's orchestration on a simulated, in-memory Kafka, checked against tests/reference.py.

The real-broker tests in tests/integration prove delivery and recovery; these prove, in
seconds, that routing, watermarks, closing and dead letters add up to the reference semantics.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest

from app import detector as detector_module
from app import models
from app.detector import Detector
from app.errors import Fenced
from app.settings import Settings
from app.windowing import NO_WATERMARK
from tests.reference import expected_alerts

PARTITIONS = 4
START_MS = 1_500_768_000_000  # 2017-07-23T00:00:00Z


class SimTopic:
    """A topic of the simulated broker: partitions are lists of (key, value)."""

    def __init__(self) -> None:
        self.partitions: dict[int, list[tuple[bytes | None, bytes]]] = defaultdict(list)

    async def send(
        self, *, key: bytes | None = None, value: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        if partition is None:
            partition = zlib.crc32(key or b"") % PARTITIONS
        self.partitions[partition].append((key, value or b""))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class UnackedTopic(SimTopic):
    """A topic whose broker never acknowledges: the worker dies before it does."""

    async def send(
        self, *, key: bytes | None = None, value: bytes | None = None, partition: int | None = None
    ) -> asyncio.Future[None]:
        await super().send(key=key, value=value, partition=partition)
        return asyncio.get_running_loop().create_future()


class DictState:
    """The table as a dict (keys are unique across partitions: a pair lives in one)."""

    def __init__(self, data: dict[str, bytes]) -> None:
        self.data = data
        self.writes = 0

    def get(self, partition: int, key: str) -> bytes | None:
        return self.data.get(key)

    def items(self) -> Any:
        return list(self.data.items())

    async def write(self, partition: int, changes: Any, written_ms: int) -> None:
        self.writes += 1
        self.written_ms = written_ms
        for key, value in changes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value


def record(offset: int, key: bytes | None, value: bytes) -> Any:
    return SimpleNamespace(offset=offset, key=key, value=value, timestamp=None)


async def transaction(
    detector: Detector, partition: int, offset: int, key: bytes | None, value: bytes
) -> None:
    """One input record, as a batch of its own."""
    await detector.on_transactions(partition, [record(offset, key, value)])


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # wall clock: 2027, after every event time here

    def __call__(self) -> float:
        return self.now


class Restarted(Exception):
    """What the detector's restart raises here (the real one replaces the process)."""


def restart(reason: str) -> None:
    raise Restarted(reason)


def detector_on(
    table: dict[str, bytes], *, fraud: SimTopic | None = None, dead_letters: SimTopic | None = None
) -> Detector:
    """A detector with default settings over ``table``; topics that only record what they get."""
    return Detector(
        settings(),
        DictState(table),
        fraud=fraud or SimTopic(),
        dead_letters=dead_letters or SimTopic(),
        rekeyed=SimTopic(),
        restart=restart,
    )


def settings(**overrides: str) -> Settings:
    env = {"TOPIC_PARTITIONS": str(PARTITIONS), "IDLE_TIMEOUT": "5", "MAX_EVIDENCE": "5"}
    env.update(overrides)
    return Settings.from_env(env)


def simulated(clock: Clock, **overrides: str) -> tuple[Detector, SimTopic, SimTopic, SimTopic]:
    """A detector on an empty table, and its topics: fraud, dead letters, re-keyed."""
    fraud, dlq, rekeyed = SimTopic(), SimTopic(), SimTopic()
    detector = Detector(
        settings(**overrides),
        DictState({}),
        fraud=fraud,
        dead_letters=dlq,
        rekeyed=rekeyed,
        now=clock,
        restart=restart,
    )
    return detector, fraud, dlq, rekeyed


async def run(
    records: list[tuple[int, bytes | None, bytes]], **overrides: str
) -> tuple[Detector, SimTopic, SimTopic]:
    """Feed (partition, key, value) records, interleaving partitions; then let them go idle."""
    clock = Clock()
    detector, fraud, dlq, rekeyed = simulated(clock, **overrides)
    inputs: dict[int, list[tuple[bytes | None, bytes]]] = defaultdict(list)
    for partition, key, value in records:
        inputs[partition].append((key, value))
    done = {p: 0 for p in range(PARTITIONS)}
    done_rekeyed = {p: 0 for p in range(PARTITIONS)}
    rng = random.Random(7)

    async def drain() -> bool:
        progressed = False
        for partition in range(PARTITIONS):  # batches of 1 to 3 records
            start = done[partition]
            batch = inputs[partition][start : start + rng.randint(1, 3)]
            if batch:
                await detector.on_transactions(
                    partition, [record(start + i, k, v) for i, (k, v) in enumerate(batch)]
                )
                done[partition] += len(batch)
                progressed = True
            queue = rekeyed.partitions[partition]
            if done_rekeyed[partition] < len(queue):
                await detector.on_rekeyed(
                    partition, [record(0, k, v) for k, v in queue[done_rekeyed[partition] :]]
                )
                done_rekeyed[partition] = len(queue)
                progressed = True
        return progressed

    detector.idle_partitions(range(PARTITIONS))  # the worker's timer looks at its assignment
    while await drain():
        clock.now += 0.001
    clock.now += 3600  # every partition idle for long: windows close
    for partition in range(PARTITIONS):
        await detector.on_tick(partition)
    while await drain():
        pass
    return detector, fraud, dlq


def stream(seed: int, n: int, *, keyed: bool, late_every: int = 0) -> list[tuple[int, bytes]]:
    """(partition, line) in time order; a few structuring bursts; some bad lines."""
    rng = random.Random(seed)
    spread = random.Random(seed + 1000)  # partitions of unkeyed records: not from rng
    t = START_MS
    out = []
    for i in range(n):
        t += rng.randint(0, 40_000)
        sender, receiver = rng.choice([("1", "2"), ("2", "1"), ("3", "4"), ("5", "6"), ("7", "8")])
        cents = rng.choice([rng.randint(1, 300_000), rng.randint(1, 99) * 100])
        when = t - rng.randint(600_000, 900_000) if late_every and i % late_every == 5 else t
        stamp = models.rfc3339_ms(when)
        line = f"{stamp};{sender};{receiver};{cents // 100}.{cents % 100:02d}".encode()
        if i % 97 == 13:
            line = b"garbage;" + line
        pair = f"{sender}:{receiver}".encode()
        partition = zlib.crc32(pair) % PARTITIONS if keyed else spread.randrange(PARTITIONS)
        out.append((partition, line))
    return out


def alerts(fraud: SimTopic, kind: str) -> dict[str, tuple[int, int]]:
    found = {}
    for records in fraud.partitions.values():
        for _, value in records:
            alert = models.decode(value)
            if alert["kind"] == kind:
                cents = int(alert["total"].replace(".", ""))
                assert found.setdefault(alert["alert_id"], (cents, alert["count"])) == (
                    cents,
                    alert["count"],
                ), "an alert_id with two different contents"
    return found


def keyed(lines: list[tuple[int, bytes]]) -> list[tuple[int, bytes | None, bytes]]:
    out: list[tuple[int, bytes | None, bytes]] = []
    for partition, line in lines:
        fields = line.split(b";")
        key = fields[1] + b":" + fields[2] if len(fields) == 4 else None
        out.append((partition, key, line))
    return out


def by_partition(lines: list[tuple[int, bytes]]) -> list[tuple[int, int, bytes]]:
    offsets: dict[int, int] = defaultdict(int)
    out = []
    for partition, line in lines:
        out.append((partition, offsets[partition], line))
        offsets[partition] += 1
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_keyed_input_matches_the_reference(seed: int) -> None:
    lines = stream(seed, 3000, keyed=True, late_every=50)
    expected = expected_alerts(by_partition(lines))
    _, fraud, dlq = await run(keyed(lines))
    assert len(expected.closed) > 10
    assert alerts(fraud, "window_closed") == expected.closed
    assert alerts(fraud, "threshold_crossed") == expected.crossed
    dead = {}
    for partition, records in dlq.partitions.items():
        del partition
        for _, value in records:
            letter = models.decode(value)
            dead[(letter["partition"], letter["offset"])] = letter["reason"]
    assert dead == expected.dead
    assert "late" in dead.values()


@pytest.mark.parametrize("seed", [4, 5])
async def test_unkeyed_input_gives_the_same_alerts(seed: int) -> None:
    keyed_lines = stream(seed, 2000, keyed=True)
    unkeyed_lines = stream(seed, 2000, keyed=False)
    expected = expected_alerts(by_partition(keyed_lines))
    _, fraud, _ = await run([(p, None, line) for p, line in unkeyed_lines])
    assert len(expected.closed) > 10
    assert alerts(fraud, "window_closed") == expected.closed


async def test_state_is_dropped_once_every_window_closed() -> None:
    detector, _, _ = await run(keyed(stream(6, 500, keyed=True)))
    assert [k for k in detector.state.data if not k.startswith("#")] == []  # type: ignore[attr-defined]


def test_alert_fields(seed: int = 1) -> None:
    lines = stream(seed, 400, keyed=True)
    _, fraud, _ = asyncio.run(run(keyed(lines)))
    alert: dict[str, Any] = models.decode(fraud.partitions[min(fraud.partitions)][0][1])
    assert set(alert) == {
        "schema",
        "alert_id",
        "kind",
        "sender",
        "receiver",
        "window_start",
        "window_end",
        "total",
        "threshold",
        "count",
        "first_event",
        "last_event",
        "transactions",
        "truncated",
        "detected_at",
    }
    assert alert["threshold"] == "10000.00"
    assert alert["alert_id"].startswith(f"{alert['sender']}:{alert['receiver']}:")
    assert len(alert["transactions"]) <= 5


def stalled(detector: Detector, seconds: float = 3600) -> None:
    """The heartbeat ran, then the process was stopped for ``seconds``."""
    detector.beat()
    assert detector.last_beat is not None
    detector.last_beat -= seconds


async def test_after_a_stall_the_worker_restarts_before_writing_anything() -> None:
    table: dict[str, bytes] = {}
    detector = detector_on(table)
    detector.on_rebalance((), assigned={0, 1})
    line = b"2017-07-23T00:00:01Z;1;2;5"
    await transaction(detector, 1, 0, b"1:2", line)
    assert "1:2" in table
    stalled(detector)
    before = dict(table)
    with pytest.raises(Restarted, match="stopped for 3600s, past the session timeout"):
        await transaction(detector, 1, 1, b"1:2", line)
    assert table == before


async def test_a_stall_a_heartbeat_interval_short_of_the_session_timeout_restarts() -> None:
    # the group counts the session from the last heartbeat, sent before the stop
    detector = detector_on({})
    session, interval = detector.settings.session_timeout_s, detector.settings.heartbeat_interval_s
    stalled(detector, session - interval - 0.5)
    detector.beat()  # not long enough to be dropped
    stalled(detector, session - interval + 0.5)
    with pytest.raises(Restarted, match="less a heartbeat interval"):
        detector.beat()


async def test_a_stall_seen_by_the_heartbeat_timer_restarts_the_worker() -> None:
    detector = detector_on({})
    detector.on_rebalance((), assigned={0})
    stalled(detector)
    with pytest.raises(Restarted):
        detector.beat()  # the timer ran first after the stop


async def test_an_alert_wait_that_spans_a_stall_writes_no_state() -> None:
    # the alert is sent, the process stops while it waits for the acknowledgement
    table: dict[str, bytes] = {}

    class StallingTopic(SimTopic):
        async def send(self, **kwargs: Any) -> asyncio.Future[None]:
            done = await super().send(**kwargs)
            stalled(detector)
            return done

    detector = detector_on(table, fraud=StallingTopic())
    detector.on_rebalance((), assigned={0})
    with pytest.raises(Restarted):
        await transaction(detector, 0, 0, b"1:2", b"2017-07-23T00:00:01Z;1;2;2000000")
    assert table == {} or all(key.startswith("#") for key in table)


async def test_a_revoked_partition_is_not_written() -> None:
    table: dict[str, bytes] = {}
    detector = detector_on(table)
    detector.on_rebalance((), assigned={0, 1})
    detector.on_rebalance((1,))
    with pytest.raises(Fenced):
        await transaction(detector, 1, 0, b"1:2", b"2017-07-23T00:00:01Z;1;2;5")
    assert table == {}


async def test_a_slow_start_is_no_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    # the heartbeat's first beat may come long after the detector was made (the app starting)
    detector = detector_on({})
    later = time.monotonic() + 3600
    monkeypatch.setattr(detector_module, "time", SimpleNamespace(monotonic=lambda: later))
    detector.beat()
    detector.on_rebalance((), assigned={0})
    await transaction(detector, 0, 0, b"1:2", b"2017-07-23T00:00:01Z;1;2;5")


async def test_a_first_recovery_longer_than_the_session_timeout_is_no_stall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # before the first beat there is nothing to measure a gap from: records that come then,
    # long after the assignment (a long first recovery), are no stall
    detector = detector_on({})
    detector.on_rebalance((), assigned={0})
    later = time.monotonic() + 3600  # an hour of restoring a large table
    monkeypatch.setattr(detector_module, "time", SimpleNamespace(monotonic=lambda: later))
    await transaction(detector, 0, 0, b"1:2", b"2017-07-23T00:00:01Z;1;2;5")


async def test_a_write_is_timed_before_the_guard_so_a_stop_after_it_is_fenced() -> None:
    # A SIGSTOP can land after the guard passed, while the changes are encoded: the resumed
    # zombie then writes. Timed before the guard, its records are older than the next owner's
    # first write, and the changelog fence drops them (seen: a nemesis run whose zombie's
    # records, timed after it resumed, passed the fence and undid the next owner's state).
    clock = Clock()
    detector, _, _, _ = simulated(clock)
    guard, guards = detector._guard, []

    def stopped_after(partition: int) -> None:  # the batch's guards: at its start, at its end
        guard(partition)
        guards.append(clock.now)
        if len(guards) == 2:
            clock.now += 12  # stopped past the session timeout, right after the last guard

    detector._guard = stopped_after  # type: ignore[method-assign]
    await transaction(detector, 0, 0, b"1:2", b"2017-07-23T00:00:01Z;1;2;5")
    assert detector.state.written_ms == int(guards[-1] * 1000) < int(clock.now * 1000)


async def test_a_late_dead_letter_not_acknowledged_before_a_crash_is_sent_again() -> None:
    lines = [
        b"2017-07-23T01:00:00Z;1;2;5",
        b"2017-07-23T00:40:00Z;1;2;7",  # every window of 00:40 closed at 01:00: late
        b"2017-07-23T01:00:01Z;1;2;6",  # a later offset applied: a replay would skip offset 1
    ]
    table: dict[str, bytes] = {}
    before_crash = UnackedTopic()
    detector = detector_on(table, dead_letters=before_crash)
    detector.on_rebalance((), assigned={0})
    for offset, line in enumerate(lines):
        await transaction(detector, 0, offset, b"1:2", line)
    assert len(before_crash.partitions[zlib.crc32(b"") % PARTITIONS]) == 1
    # restart on the state as it was stored (the changelog): the input is replayed from 0
    after_crash, stored = SimTopic(), dict(table)
    restarted = detector_on(stored, dead_letters=after_crash)
    restarted.on_rebalance((), assigned={0})
    for offset, line in enumerate(lines):
        await transaction(restarted, 0, offset, b"1:2", line)
    letters = [models.decode(v) for vs in after_crash.partitions.values() for _, v in vs]
    assert [(d["reason"], d["offset"]) for d in letters] == [("late", 1)]
    assert restarted.counts["duplicates_skipped"] == 2
    # acknowledged now: once the clock is stored again, a further replay does not repeat it
    await asyncio.sleep(0)  # the acknowledgement's callback
    await transaction(restarted, 0, 3, b"1:2", b"2017-07-23T01:30:00Z;1;2;1")
    again = SimTopic()
    third = detector_on(stored, dead_letters=again)
    third.on_rebalance((), assigned={0})
    await transaction(third, 0, 1, b"1:2", lines[1])
    assert dict(again.partitions) == {}


async def test_indexing_many_pairs_lets_the_event_loop_run() -> None:
    # the stall guard's heartbeat runs on the same loop: a rebuild that held it for the
    # tens of seconds a million pairs take would look like a stopped process
    table: dict[str, bytes] = {}
    writer = detector_on(table)
    pairs = 3 * detector_module.INDEX_YIELD_PAIRS
    for n in range(pairs):
        line = f"2017-07-23T00:00:01Z;{n};x;5".encode()
        await transaction(writer, 0, n, f"{n}:x".encode(), line)
    reader = detector_on(table)
    turns = 0

    async def heartbeat() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    beating = asyncio.ensure_future(heartbeat())
    await asyncio.sleep(0)
    before = turns
    await reader.on_tick(0)  # the first record after a rebalance indexes every pair
    beating.cancel()
    assert reader.open_pairs() == pairs
    assert turns - before >= 3


@pytest.mark.parametrize("used", [[2], [0, 1, 3]])
async def test_unkeyed_input_on_some_partitions_closes_its_windows_once_the_others_idle(
    used: list[int],
) -> None:
    # the partitions without a record never announce a watermark; idle, they leave the minimum
    lines = [
        (used[i % len(used)], line) for i, (_, line) in enumerate(stream(8, 1500, keyed=False))
    ]
    expected = expected_alerts(by_partition(lines))
    detector, fraud, _ = await run([(p, None, line) for p, line in lines])
    assert len(expected.closed) > 10
    assert alerts(fraud, "window_closed") == expected.closed
    assert detector.open_pairs() == 0


async def test_a_partition_back_from_idle_rejoins_and_its_late_records_are_dead_letters() -> None:
    clock = Clock()
    detector, fraud, dlq, rekeyed = simulated(clock, TOPIC_PARTITIONS="2")
    delivered = {0: 0, 1: 0}

    async def deliver() -> None:  # the re-keyed topic's records, in order, to their partition
        for partition in (0, 1):
            queue = rekeyed.partitions[partition]
            while delivered[partition] < len(queue):
                await detector.on_rekeyed(partition, [record(0, *queue[delivered[partition]])])
                delivered[partition] += 1

    def line(minute: int, amount: str) -> bytes:
        return f"{models.rfc3339_ms(START_MS + minute * 60_000)};1;2;{amount}".encode()

    detector.on_rebalance((), assigned={0, 1})
    assert detector.idle_partitions([0, 1]) == []  # the idle time counts from here
    await transaction(detector, 0, 0, None, line(0, "6000"))
    await transaction(detector, 0, 1, None, line(1, "6000"))
    await deliver()
    clock.now += 6  # partition 1, never a record, is idle: partition 0 alone drives the minimum
    assert detector.idle_partitions([0, 1], waiting=lambda p: p == 0) == [1]
    await detector.on_tick(1)
    await deliver()
    await transaction(detector, 0, 2, None, line(30, "1"))  # closes every window of 0..1
    await deliver()
    assert len(alerts(fraud, "window_closed")) == 5  # the five windows holding both: 12,000
    assert detector.clocks[1].source_idle
    await transaction(detector, 1, 0, None, line(5, "9000"))  # back: behind the watermark
    await deliver()
    assert not detector.clocks[1].source_idle
    letters = [models.decode(value) for records in dlq.partitions.values() for _, value in records]
    assert [(d["reason"], d["partition"], d["offset"]) for d in letters] == [("late", 1, 0)]
    assert detector.counts["late"] == 1


class Routes:
    """Input partitions that send keyed or unkeyed lines, and the re-keyed topic delivered on
    demand; pair 1:2 is re-keyed to state partition ``state``."""

    def __init__(self, clock: Clock, **overrides: str) -> None:
        self.detector, self.fraud, self.dlq, self.rekeyed = simulated(clock, **overrides)
        self.state = zlib.crc32(b"1:2") % PARTITIONS
        self.offsets: dict[int, int] = defaultdict(int)
        self.sent: list[tuple[int, int, bytes]] = []  # (partition, offset, line), for the reference

    async def send(
        self, partition: int, key: bytes | None, minute: int, pair: str, amount: str
    ) -> None:
        line = f"{models.rfc3339_ms(START_MS + minute * 60_000)};{pair};{amount}".encode()
        self.sent.append((partition, self.offsets[partition], line))
        await transaction(self.detector, partition, self.offsets[partition], key, line)
        self.offsets[partition] += 1

    async def noise(self, minute: int, partitions: Iterable[int] = range(PARTITIONS)) -> None:
        """A keyed cent on each of ``partitions`` at ``minute``: their watermarks move there."""
        for p in partitions:
            await self.send(p, f"9{p}:8".encode(), minute, f"9{p};8", "0.01")

    async def deliver(self) -> None:
        for partition, queue in self.rekeyed.partitions.items():
            await self.detector.on_rekeyed(partition, [record(0, k, v) for k, v in queue])
            queue.clear()


@pytest.mark.parametrize("keyed_first", [True, False])
async def test_keyed_input_ahead_closes_no_window_of_re_keyed_pairs(keyed_first: bool) -> None:
    # A state partition's keyed input runs ahead of its re-keyed pairs, whose transactions are
    # still on the internal topic: they join their windows all the same, in either order (a
    # 10-minute nemesis run lost a window when the keyed batch came first).
    routes = Routes(Clock(), IDLE_TIMEOUT="0")
    other = (routes.state + 1) % PARTITIONS
    for minute in range(-8, 0):  # 23:52 to 23:59 on another input partition: $16,000, unkeyed
        await routes.send(other, None, minute, "1;2", "2000")
    if not keyed_first:
        await routes.deliver()
    await routes.noise(3, [routes.state])  # keyed: this input partition's watermark is 00:02
    await routes.deliver()
    await routes.noise(120)  # every input goes on to 02:00: every window closes
    await routes.deliver()

    expected = expected_alerts(routes.sent)
    assert "1:2:1500767520000" in expected.closed  # [23:52, 00:02): the eight transfers
    assert alerts(routes.fraud, "window_closed") == expected.closed
    assert not any(routes.dlq.partitions.values())


async def test_a_pair_that_changes_route_keeps_its_closed_windows_closed() -> None:
    routes = Routes(Clock(), IDLE_TIMEOUT="0")
    other = (routes.state + 1) % PARTITIONS
    await routes.noise(4)
    await routes.deliver()  # the minimum is 00:04
    await routes.send(routes.state, b"1:2", 20, "1;2", "1")  # keyed: the pair closes to 00:32,
    await routes.send(routes.state, b"1:2", 25, "1;2", "1")  # 00:25 still open
    await routes.noise(32, [routes.state])
    await routes.send(other, None, 5, "1;2", "20000")  # then re-keyed, in windows it closed
    await routes.deliver()
    assert routes.detector.counts["late"] == 1
    await routes.noise(20)
    await routes.deliver()  # the minimum passes what the pair holds, below its own close mark
    await routes.noise(120)
    await routes.deliver()
    assert alerts(routes.fraud, "threshold_crossed") == {}
    assert "1:2" not in routes.detector.state.data  # closed out on its new route


async def test_a_partition_back_from_idle_lowers_no_route_s_mark() -> None:
    # the minimum rises while a partition is idle, then falls back when it rejoins: a record
    # behind what was reached is late, even for the state partition's first re-keyed pair
    clock = Clock()
    routes = Routes(clock, IDLE_TIMEOUT="5")
    other = (routes.state + 1) % PARTITIONS
    idle = next(p for p in range(PARTITIONS) if p not in (routes.state, other))
    await routes.noise(2)
    await routes.deliver()
    clock.now += 10
    await routes.detector.on_tick(idle)  # out of the minimum
    await routes.noise(20, [p for p in range(PARTITIONS) if p != idle])
    await routes.deliver()  # the minimum is 00:20; no re-keyed pair on the state partition yet
    await routes.noise(4, [idle])  # back: the minimum goes back to 00:04
    await routes.deliver()
    await routes.send(other, None, 6, "1;2", "1")  # behind 00:20
    await routes.deliver()
    assert routes.detector.counts["late"] == 1


async def test_a_clock_stored_with_one_mark_closes_what_its_routes_passed_once_loaded() -> None:
    # A version before the per-route marks stored the lowest: a keyed watermark at 00:12 with
    # the minimum at 00:02 left a keyed pair's windows open up to 00:12.
    routes = Routes(Clock(), IDLE_TIMEOUT="0")
    other = (routes.state + 1) % PARTITIONS
    keyed_pair = next(  # keyed on the state partition pair 1:2 is re-keyed to
        f"{n}:7"
        for n in range(10, 99)
        if zlib.crc32(f"{n}:7".encode()) % PARTITIONS == routes.state
    )
    await routes.noise(2)
    await routes.deliver()
    await routes.send(other, None, 1, "1;2", "1")
    await routes.deliver()
    await routes.send(routes.state, keyed_pair.encode(), 0, keyed_pair.replace(":", ";"), "20000")
    key = f"#clock:{routes.state}"
    stored = models.decode(routes.detector.state.data[key])
    del stored["closed_routes"]
    stored |= {"source": START_MS + 12 * 60_000, "closed": START_MS + 2 * 60_000}
    upgraded = Routes(Clock(), IDLE_TIMEOUT="0")
    upgraded.detector.state.data.update(routes.detector.state.data, **{key: models.encode(stored)})
    upgraded.offsets.update(routes.offsets)

    await upgraded.send(routes.state, keyed_pair.encode(), 11, keyed_pair.replace(":", ";"), "1")
    closed = alerts(upgraded.fraud, "window_closed")
    starts = [START_MS + m * 60_000 for m in (-6, -4, -2, 0)]  # those of 00:00 open at 00:02
    assert closed == {f"{keyed_pair}:{start}": (2_000_000, 1) for start in starts}


async def test_a_batch_reads_and_writes_a_hot_pair_once() -> None:
    # 200 transfers of one pair in one batch: one write of the partition's state, as many
    # alerts as fed one by one
    lines = [f"{models.rfc3339_ms(START_MS + i * 1000)};1;2;{400 + i}".encode() for i in range(200)]
    batched, one_by_one = DictState({}), DictState({})
    fraud_batched, fraud_single = SimTopic(), SimTopic()
    for state, fraud in ((batched, fraud_batched), (one_by_one, fraud_single)):
        detector = Detector(
            settings(), state, fraud=fraud, dead_letters=SimTopic(), rekeyed=SimTopic(),
            restart=restart, now=Clock(),
        )  # fmt: skip
        detector.on_rebalance((), assigned={0})
        if state is batched:
            await detector.on_transactions(0, [record(i, b"1:2", v) for i, v in enumerate(lines)])
        else:
            for i, v in enumerate(lines):
                await transaction(detector, 0, i, b"1:2", v)
    assert batched.writes == 1
    assert one_by_one.writes == 200
    assert batched.data["1:2"] == one_by_one.data["1:2"]  # the clock: saved more often apart
    crossed = alerts(fraud_batched, "threshold_crossed")
    assert crossed and crossed == alerts(fraud_single, "threshold_crossed")


async def test_a_batch_s_state_is_written_only_once_its_alerts_are_acknowledged() -> None:
    table: dict[str, bytes] = {}
    fraud = UnackedTopic()
    detector = detector_on(table, fraud=fraud)
    detector.on_rebalance((), assigned={0})
    line = b"2017-07-23T00:00:01Z;1;2;2000000"
    batch = asyncio.ensure_future(transaction(detector, 0, 0, b"1:2", line))
    await asyncio.sleep(0.01)
    assert sum(len(p) for p in fraud.partitions.values()) == 5  # the alerts went out
    assert not batch.done() and table == {}  # its state waits for the acknowledgement
    batch.cancel()


async def test_a_timer_s_tick_waits_for_the_batch_in_hand() -> None:
    # the idle timer ticks partitions added to the input directly: not in the middle of a batch
    table: dict[str, bytes] = {}
    fraud = UnackedTopic()
    detector = detector_on(table, fraud=fraud)
    detector.on_rebalance((), assigned={0, PARTITIONS})
    line = b"2017-07-23T00:00:01Z;1;2;2000000"
    batch = asyncio.ensure_future(transaction(detector, 0, 0, b"1:2", line))
    await asyncio.sleep(0.01)
    tick = asyncio.ensure_future(detector.on_tick(PARTITIONS))
    await asyncio.sleep(0.01)
    assert not tick.done()  # it waits its turn: the batch's alerts are not acknowledged yet
    assert table == {}
    batch.cancel()
    await asyncio.sleep(0.01)
    await asyncio.wait_for(tick, 1)


async def test_a_partition_added_to_the_input_holds_the_minimum_until_it_announces() -> None:
    # the group knows the input has 6 partitions (4 at the start): re-keyed state waits for 5
    detector = detector_on({})
    detector.on_rebalance((), assigned={0}, input_partitions=PARTITIONS + 2)

    def announcement(source: int, watermark: int) -> Any:
        return record(0, None, models.encode({"wm": watermark, "src": source}))

    line = "2017-07-23T00:00:01Z;1;2;5"
    await detector.on_rekeyed(0, [announcement(p, START_MS) for p in range(PARTITIONS + 1)])
    await detector.on_rekeyed(0, [record(0, b"1:2", models.encode({"line": line, "p": 0, "o": 0}))])
    clock = detector.clocks[0]
    assert detector.state_watermark(clock) == NO_WATERMARK  # partition 5 has said nothing yet
    await detector.on_rekeyed(0, [announcement(PARTITIONS + 1, START_MS)])
    assert detector.state_watermark(clock) == START_MS
