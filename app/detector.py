"""The detection step of one worker: every record of its partitions goes through here.

The consumer (app.runtime.consumer) hands over the records of one partition of ``transactions``,
of the internal re-keyed topic or of the idle ticks a batch at a time; this class parses each,
routes it, updates the pair's windows, moves the partition's watermark, closes due windows and
writes alerts and dead letters, record by record, in order. The rules themselves are pure
(parsing, windowing, watermark, models); this is the I/O around them.

A batch reads each pair's state once and writes it back once: the pairs it touched stay decoded
in memory until its end, where its changes to the partition's state are written together
(app.runtime.state). Crash safety (at-least-once), per batch: the batch's alerts are acknowledged
by the broker before the state that records them is written, and that state reaches the
changelog before the batch's input offsets are committed (the consumer commits only batches
ended, after a flush). So after a crash the table (RocksDB + changelog) is a prefix of what was
done: replayed input is recognised by its source offsets and skipped, and an alert is at worst
sent twice with the same alert_id and content.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from app import models
from app.errors import BadRecord, Fenced
from app.metrics import Histogram
from app.models import THRESHOLD_CROSSED, WINDOW_CLOSED
from app.parsing import LATE, Transaction, parse_transaction
from app.settings import Settings
from app.watermark import PartitionClock
from app.windowing import (
    KEYED,
    NO_WATERMARK,
    REKEYED,
    ROUTES,
    DueIndex,
    PairWindows,
    Source,
    WindowResult,
    WindowSpec,
)

log = logging.getLogger(__name__)

CLOCK_KEY_PREFIX = "#clock:"  # '#' is no account character: no pair key starts with it
INDEX_YIELD_PAIRS = 1000  # pairs indexed between two turns of the event loop (about 30 ms)


class Sender(Protocol):
    """What the detector needs of a Faust topic."""

    def send(
        self, *, key: bytes | None = ..., value: bytes | None = ..., partition: int | None = ...
    ) -> Awaitable[Any]: ...


class State(Protocol):
    """The pair-windows table as the detector uses it (app.runtime.state): values by key, a
    partition at a time."""

    def get(self, partition: int, key: str) -> bytes | None: ...

    def items(self) -> Iterable[tuple[Any, bytes]]: ...

    async def write(
        self, partition: int, changes: Mapping[str, bytes | None], written_ms: int
    ) -> None: ...


class Record(Protocol):
    """An input record as the consumer hands it over (aiokafka's ``ConsumerRecord``)."""

    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None  # ms


Now = Callable[[], float]
Restart = Callable[[str], None]  # the worker restarts with its tables rebuilt: does not return


class Detector:
    """Per-worker detection state: watermarks and due-window indexes of the owned partitions."""

    def __init__(
        self,
        settings: Settings,
        state: State,
        *,
        fraud: Sender,
        dead_letters: Sender,
        rekeyed: Sender,
        restart: Restart,
        now: Now = time.time,
    ) -> None:
        self.settings = settings
        self.spec = WindowSpec(
            size_ms=settings.window_size_ms,
            slide_ms=settings.window_slide_ms,
            threshold_cents=settings.threshold_cents,
            max_evidence=settings.max_evidence,
        )
        self.state = state
        self.fraud = fraud
        self.dead_letters = dead_letters
        self.rekeyed = rekeyed
        self.restart = restart
        self.now = now
        self.clocks: dict[int, PartitionClock] = {}
        self.due: dict[tuple[int, str], DueIndex] = {}  # by partition and route
        self.last_input: dict[int, float] = {}  # wall clock of the last input record, by partition
        self.index_stale = True  # the due indexes must be rebuilt from the table (rebalance)
        self.counts: Counter[str] = Counter()
        self.latency = Histogram()  # record's Kafka timestamp -> processed
        self.next_offset: dict[int, int] = {}  # per input partition, for the lag
        self.assigned: set[int] | None = None  # input partitions owned; None: not told yet
        # partitions of the input topic: each is in the minimum re-keyed state takes from the
        # assignment that showed it on (more than TOPIC_PARTITIONS once partitions are added)
        self.input_partitions = settings.partitions
        self.last_beat: float | None = None  # the heartbeat's last beat (_check_gap)
        # the batch in hand: the pairs it read or changed (None: deleted), those it changed, and
        # the acknowledgements of its alerts
        self.pairs: dict[str, PairWindows | None] = {}
        self.changed: set[str] = set()
        self.clock_changed = False
        self.acks: list[Awaitable[Any]] = []
        self.turn = asyncio.Lock()  # one batch at a time (the consumer's, or a timer's tick)

    def set_threshold(self, cents: int) -> None:
        """A new threshold from the control topic: applies to what is processed from now on."""
        self.spec = replace(self.spec, threshold_cents=cents)

    # -- entry points, one per input ------------------------------------------------------------

    async def on_transactions(self, partition: int, records: Sequence[Record]) -> None:
        """A batch of records of the input topic, oldest first."""
        async with self.turn:
            clock = await self._begin(partition)
            try:
                for r in records:
                    await self._transaction(clock, partition, r.offset, r.key, r.value)
                await self._end(partition)
            finally:
                self._drop_batch()
        now = self.now()
        self.last_input[partition] = now
        self.next_offset[partition] = records[-1].offset + 1
        for record in records:
            if record.timestamp is not None:
                self.latency.observe(max(0.0, now - record.timestamp / 1000))

    def watermarks(self) -> dict[str, dict[str, float]]:
        """For the metrics, by owned input partition whose clock is loaded: its own watermark
        (``input``, seconds), whether it is idle (out of the minimum of re-keyed state), and the
        watermark its state's windows are closed up to (``state``). Unknown watermarks are left
        out: a stalled partition shows as one that never moves, or is missing."""
        out: dict[str, dict[str, float]] = {"input": {}, "idle": {}, "state": {}}
        for partition, clock in sorted(self.clocks.items()):
            if self.assigned is not None and partition not in self.assigned:
                continue
            name = str(partition)
            out["idle"][name] = float(clock.source_idle)
            if clock.source > NO_WATERMARK:
                out["input"][name] = clock.source / 1000
            state = self.state_watermark(clock)
            if state > NO_WATERMARK:
                out["state"][name] = state / 1000
        return out

    def open_pairs(self) -> int:
        """Pairs with open windows on this worker (approximate: the due index may repeat one)."""
        return sum(len(index) for index in self.due.values())

    async def _transaction(
        self,
        clock: PartitionClock,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
    ) -> None:
        self.counts["received"] += 1
        try:
            tx = parse_transaction(value, max_bytes=self.settings.max_record_bytes)
        except BadRecord as bad:
            await self._dead_letter(bad.reason, bad.detail, value, partition, offset)
            return
        source = Source(KEYED, partition, offset)
        if clock.source_idle:  # back from idle: rejoin the minimum before its records arrive
            clock.source_idle = False
            await self._announce(clock)
            self._save_clock(clock)
        if key == tx.pair.encode() and partition < self.settings.partitions:
            if not clock.keyed:
                clock.keyed = True
                self._save_clock(clock)
            await self._apply(clock, tx, source, value)
        else:  # unkeyed, keyed otherwise, or on a partition added to the input (no state
            # partition of its own: app.runtime.assignment): re-key by pair, like Flink's keyBy
            await self.rekeyed.send(
                key=tx.pair.encode(),
                value=models.encode({"line": (value or b"").decode(), "p": partition, "o": offset}),
            )
        if clock.observe(self.spec, tx.time_ms, self.settings.max_out_of_orderness_ms):
            await self._announce(clock)
            self._save_clock(clock)
        await self._advance(clock, KEYED)

    async def on_rekeyed(self, partition: int, records: Sequence[Record]) -> None:
        """A batch of records of the internal re-keyed topic: transactions and watermark
        announcements."""
        async with self.turn:
            clock = await self._begin(partition)
            try:
                for record in records:
                    await self._rekeyed(clock, record.value)
                await self._end(partition)
            finally:
                self._drop_batch()

    async def _rekeyed(self, clock: PartitionClock, value: bytes | None) -> None:
        data = models.decode(value or b"{}")
        if "wm" in data:
            if clock.announce(data["src"], data["wm"], data.get("idle", False)):
                self._save_clock(clock)
                await self._advance(clock, REKEYED)
            return
        raw = data["line"].encode()
        source = Source(REKEYED, data["p"], data["o"])
        tx = parse_transaction(raw, max_bytes=len(raw))  # parsed once already: cannot fail
        if not clock.rekeyed:
            clock.rekeyed = True
            self._save_clock(clock)
        await self._apply(clock, tx, source, raw)

    async def on_tick(self, partition: int) -> None:
        """A wall-clock tick for an input partition that may be idle: it leaves the minimum of
        re-keyed state (announced once), and its own watermark goes on at wall-clock speed."""
        async with self.turn:
            clock = await self._begin(partition)
            try:
                await self._tick(clock, partition)
                await self._end(partition)
            finally:
                self._drop_batch()

    async def _tick(self, clock: PartitionClock, partition: int) -> None:
        idle_s = self.settings.idle_timeout_s
        now = self.now()
        idle_for = now - self.last_input.setdefault(partition, now)
        if idle_s <= 0 or idle_for < idle_s:
            return
        moved = clock.idle(self.spec, int((idle_for - idle_s) * 1000))
        if moved or not clock.source_idle:
            clock.source_idle = True
            await self._announce(clock)
            self._save_clock(clock)
            await self._advance(clock, KEYED)

    def idle_partitions(
        self, assigned: Iterable[int], waiting: Callable[[int], bool] = lambda p: False
    ) -> list[int]:
        """Assigned input partitions without input for IDLE_TIMEOUT (they need a tick). The time
        counts from the last record, or from the first look after the assignment; a partition
        with records waiting to be read is behind, not idle (``waiting``)."""
        if self.settings.idle_timeout_s <= 0:
            return []
        now = self.now()
        idle = []
        for p in assigned:
            if waiting(p):
                self.last_input[p] = now
            elif now - self.last_input.setdefault(p, now) >= self.settings.idle_timeout_s:
                idle.append(p)
        return idle

    def on_rebalance(
        self,
        revoked: Iterable[int],
        assigned: Iterable[int] | None = None,
        input_partitions: int | None = None,
    ) -> None:
        """Partitions moved: forget their in-memory state; rebuild indexes before going on.
        ``input_partitions``: the input topic's partition count, as the group knows it now. A
        partition added to it holds the minimum back from then on, until it announces its
        watermark or goes idle, as a partition Flink discovers does: none of its records can
        have been read anywhere before the group knew of it."""
        self._forget(revoked)
        if self.assigned is not None:
            self.assigned.difference_update(revoked)
        if assigned is not None:
            self.assigned = set(assigned)
        if input_partitions is not None:
            self.input_partitions = max(self.settings.partitions, input_partitions)

    def _forget(self, partitions: Iterable[int]) -> None:
        """Drop the in-memory state of ``partitions``: it is reloaded from the table."""
        for partition in list(partitions):
            self.clocks.pop(partition, None)
            for route in ROUTES:
                self.due.pop((partition, route), None)
            self.last_input.pop(partition, None)
            self.next_offset.pop(partition, None)
        self.index_stale = True

    def beat(self) -> None:
        """Called every half second from the start (app.agents.heartbeat): the event loop is
        running. A long gap since the last beat means the process was stopped; whoever runs
        first after it notices."""
        self._check_gap()
        self.last_beat = time.monotonic()

    def _check_gap(self) -> None:
        """A worker stopped (SIGSTOP, a frozen VM) past the session timeout has been removed
        from the group, but learns it only at its next heartbeat: another worker owns its
        partitions and may have moved them on. What it would write now would overwrite the new
        owner's state. Its local tables are behind the changelog too: the records it held go out
        after the new owner's, and their acknowledgements move its restore point past those.
        So it restarts and rebuilds its tables from the changelog, where app.runtime.fencing
        drops the records it held. The broker counts the session from the last heartbeat, which can
        have gone out a heartbeat interval before the stop (seen: a worker stopped for 7.5 s was
        dropped with an 8 s session timeout), so that much less is enough."""
        # None until the first beat: nothing to measure a gap from yet. Exactly-once: the
        # broker fences what it would write (app.runtime.transactions), and it restarts then
        if self.last_beat is None or self.settings.exactly_once:
            return
        gap = time.monotonic() - self.last_beat
        # the session runs from the last heartbeat, sent up to an interval before the stop
        session, interval = self.settings.session_timeout_s, self.settings.heartbeat_interval_s
        if gap > session - interval:
            self.restart(
                f"the worker was stopped for {gap:.0f}s, past the session timeout ({session:.0f}s) "
                f"less a heartbeat interval ({interval:.1f}s): it may have lost its partitions"
            )
            raise Fenced("this worker was stopped past the session timeout")  # restart returned

    def _guard(self, partition: int) -> None:
        """Refuse to change state for a partition this worker may have lost (Fenced): after a
        stall past the session timeout (see _check_gap), or once the partition was revoked."""
        self._check_gap()
        if self.assigned is not None and partition not in self.assigned:
            raise Fenced(f"partition {partition} is no longer assigned to this worker")

    # -- the steps ------------------------------------------------------------------------------

    async def _apply(
        self, clock: PartitionClock, tx: Transaction, source: Source, raw: bytes | None
    ) -> None:
        """Add one transaction to its pair's open windows, or dead-letter it as late. It meets
        the watermark of its pair's route: a keyed transaction of a pair that also came re-keyed
        meets the re-keyed one, which closes that pair."""
        if clock.is_duplicate(source):
            if clock.is_held_late(source):  # its dead letter may never have reached the broker
                await self._late(clock, tx, source, raw, self.state_watermark(clock, source.route))
            else:
                self.counts["duplicates_skipped"] += 1
            return
        state = self._load(clock.partition, tx.pair)
        if state is None:
            route = source.route
            watermark = self.state_watermark(clock, route)
            state = PairWindows(partition=clock.partition, closed_ms=self.spec.floor(watermark))
        elif state.is_duplicate(source):
            self.counts["duplicates_skipped"] += 1
            clock.mark_applied(source)
            return
        else:
            route = REKEYED if source.route == REKEYED else state.route
            watermark = self.state_watermark(clock, route)
        crossed = state.add(self.spec, tx, source, watermark)
        clock.mark_applied(source)
        if crossed is None:
            self.counts["late"] += 1
            await self._late(clock, tx, source, raw, watermark)
            return
        self.counts["processed"] += 1
        await self._alert(THRESHOLD_CROSSED, tx.pair, crossed)
        self._store(tx.pair, state)
        self._due(clock.partition, route).schedule(state.next_close_ms(self.spec), tx.pair)

    def state_watermark(self, clock: PartitionClock, route: str | None = None) -> int:
        """The watermark a transaction of the route meets on the partition: what the route has
        closed (each step that moves a route's watermark closes up to it: ``_advance``). Without
        a route, the lowest of the routes the partition had events of."""
        if route is None:
            used = [r for r, seen in ((KEYED, clock.keyed), (REKEYED, clock.rekeyed)) if seen]
            return min((clock.closed_at(r) for r in used), default=NO_WATERMARK)
        return clock.closed_at(route)

    async def _late(
        self,
        clock: PartitionClock,
        tx: Transaction,
        source: Source,
        raw: bytes | None,
        watermark: int,
    ) -> None:
        """Dead-letter a late transaction. Until the broker acknowledges it, the partition's
        stored clock lists it: saved now, before any later write can record a higher offset as
        applied, so a replay after a crash sends it again instead of skipping it."""
        clock.hold_late(source)
        self._save_clock(clock)
        sent = await self._dead_letter(
            LATE,
            f"every window of {models.rfc3339_ms(tx.time_ms)} closed "
            f"(watermark {models.rfc3339_ms(watermark)})",
            raw,
            source.partition,
            source.offset,
        )

        def acknowledged(done: asyncio.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is None:
                clock.release_late(source)  # stored with the clock's next save

        asyncio.ensure_future(sent).add_done_callback(acknowledged)

    async def _advance(self, clock: PartitionClock, route: str) -> None:
        """Close the windows of the route's pairs that its watermark has passed."""
        watermark = clock.watermark(route, self.input_partitions)
        if watermark <= clock.closed_at(route):
            return
        clock.closed[route] = watermark
        self._save_clock(clock)
        await self._close_due(clock, route)

    async def _close_due(self, clock: PartitionClock, route: str) -> None:
        due = self._due(clock.partition, route)
        closed = clock.closed_at(route)
        for pair in due.pop_due(closed):
            state = self._load(clock.partition, pair)
            if state is None or state.route != route:
                continue  # a stale index entry: the pair was closed out, or it changed route
            await self._alert(WINDOW_CLOSED, pair, state.close(self.spec, closed))
            if state.panes:
                self._store(pair, state)
                due.schedule(state.next_close_ms(self.spec), pair)
            else:
                self._store(pair, None)

    async def _alert(self, kind: str, pair: str, windows: list[WindowResult]) -> None:
        """Send alerts; the batch's end waits for their acknowledgement before its state (which
        says 'sent') is written."""
        if not windows:
            return
        detected = int(self.now() * 1000)
        for window in windows:
            alert = models.build_alert(
                kind,
                pair,
                window,
                size_ms=self.spec.size_ms,
                threshold_cents=self.spec.threshold_cents,
                detected_at_ms=detected,
            )
            self.acks.append(
                await self.fraud.send(key=alert["alert_id"].encode(), value=models.encode(alert))
            )
            self.counts[f"alerts_{kind}"] += 1
            log.info(
                "alert %s %s total=%s count=%d",
                kind,
                alert["alert_id"],
                alert["total"],
                alert["count"],
            )

    async def _announce(self, clock: PartitionClock) -> None:
        """Tell every partition of the re-keyed topic this input partition's watermark, and
        whether it is idle."""
        announced = {"wm": clock.source, "src": clock.partition}
        value = models.encode({**announced, "idle": True} if clock.source_idle else announced)
        for partition in range(self.settings.partitions):
            await self.rekeyed.send(key=None, value=value, partition=partition)

    async def _dead_letter(
        self, reason: str, detail: str, raw: bytes | None, partition: int, offset: int
    ) -> Awaitable[Any]:
        """Send a dead letter; returns the broker's acknowledgement, not waited for."""
        self.counts[f"dlq_{reason}"] += 1
        record = models.build_dead_letter(
            reason,
            detail,
            raw,
            topic=self.settings.transactions_topic,
            partition=partition,
            offset=offset,
            detected_at_ms=int(self.now() * 1000),
        )
        log.info("dead letter %s at %s/%d: %s", reason, partition, offset, detail)
        sent: Awaitable[Any] = await self.dead_letters.send(key=None, value=models.encode(record))
        return sent

    # -- the batch and its state ----------------------------------------------------------------

    async def _begin(self, partition: int) -> PartitionClock:
        """A batch of ``partition`` begins: its clock (loaded on first use after a rebalance;
        whatever is already due at its watermark then is closed, in this batch)."""
        self._guard(partition)
        return await self._clock(partition)

    async def _end(self, partition: int) -> None:
        """The batch's alerts are acknowledged, then its changes to the partition's state are
        written, in one write; unless the partition was lost meanwhile (Fenced: its next owner
        processes the batch again from the committed offset)."""
        acks, self.acks = self.acks, []
        if acks:
            await asyncio.gather(*acks)
        # The write time is taken before the guard: a stop that lands after the guard (while the
        # changes are encoded) leaves it older than the next owner's first write, and the
        # changelog fence drops these records (app.runtime.fencing). Taken after, it would be
        # the resumed zombie's, later than the next owner's, and pass as a new life of the group.
        written_ms = int(self.now() * 1000)
        self._guard(partition)  # the waits may have spanned a stall or a revocation
        changes: dict[str, bytes | None] = {}
        for pair in self.changed:
            state = self.pairs[pair]
            changes[pair] = None if state is None else models.encode(state.to_json())
        clock = self.clocks.get(partition)
        if self.clock_changed and clock is not None and partition < self.settings.partitions:
            # an input partition added beyond TOPIC_PARTITIONS has no state partition: its clock
            # lives in memory, and after a restart its announcements start again from its next
            # records (the receivers keep the highest)
            changes[CLOCK_KEY_PREFIX + str(partition)] = models.encode(clock.to_json())
        await self.state.write(partition, changes, written_ms)

    def _drop_batch(self) -> None:
        self.pairs.clear()
        self.changed.clear()
        self.clock_changed = False
        self.acks = []

    async def _clock(self, partition: int) -> PartitionClock:
        if self.index_stale:
            await self._rebuild_index()
        clock = self.clocks.get(partition)
        if clock is None:
            stored = (
                self.state.get(partition, CLOCK_KEY_PREFIX + str(partition))
                if partition < self.settings.partitions
                else None  # an added input partition: its clock is not stored (_end)
            )
            clock = (
                PartitionClock.from_json(models.decode(stored))
                if stored is not None
                else PartitionClock(partition)
            )
            self.clocks[partition] = clock
            for route in ROUTES:
                # a clock stored by a version that kept one mark, the lowest, can be behind
                await self._advance(clock, route)
                await self._close_due(clock, route)
        return clock

    async def _rebuild_index(self) -> None:
        """Index every pair of the owned partitions by the watermark it is next due at.

        A million pairs take tens of seconds: the loop gets a turn every INDEX_YIELD_PAIRS
        pairs, so the heartbeat (the stall guard), the idle ticks and the web server go
        on meanwhile. A rebalance waits for the batch in hand, so no partition is revoked while
        this runs; an index left half built is rebuilt at the next batch.
        """
        self.due.clear()
        started = time.monotonic()
        pairs = 0
        try:
            for key, value in self.state.items():
                name = key.decode() if isinstance(key, bytes) else key
                if name.startswith("#"):
                    continue
                state = PairWindows.from_json(models.decode(value))
                due = self._due(state.partition, state.route)
                due.schedule(state.next_close_ms(self.spec), name)
                pairs += 1
                if pairs % INDEX_YIELD_PAIRS == 0:
                    await asyncio.sleep(0)
        except BaseException:
            self.index_stale = True
            raise
        self.index_stale = False
        log.info("indexed %d pairs with open windows in %.1fs", pairs, time.monotonic() - started)

    def _due(self, partition: int, route: str) -> DueIndex:
        index = self.due.get((partition, route))
        if index is None:
            index = self.due[partition, route] = DueIndex()
        return index

    def _load(self, partition: int, pair: str) -> PairWindows | None:
        """The pair's state: as the batch left it, or read once from the table."""
        if pair in self.pairs:
            return self.pairs[pair]
        stored = self.state.get(partition, pair)
        state = None if stored is None else PairWindows.from_json(models.decode(stored))
        self.pairs[pair] = state
        return state

    def _store(self, pair: str, state: PairWindows | None) -> None:
        """The pair's new state (None: deleted), written at the batch's end."""
        self.pairs[pair] = state
        self.changed.add(pair)

    def _save_clock(self, clock: PartitionClock) -> None:
        """The partition's clock is stored with its state at the batch's end."""
        self.clock_changed = True
