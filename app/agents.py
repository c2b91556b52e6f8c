"""Faust wiring: the pair-windows table, the topics, the agent, the idle-tick timer, and the
watches on Faust itself (the heartbeat of the stall guard, the progress watch).

Thin on purpose: the consumer (app.runtime.consumer) hands each batch of an input partition to
:func:`take`, which passes it to :class:`app.detector.Detector`. The input topic, the internal
re-keyed topic and the internal tick topic all have TOPIC_PARTITIONS partitions and belong to
one agent, so Faust assigns partition N of all three (and of the table's changelog) to the same
worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from faust.types import TP

from app.app import app, settings
from app.control import ControlFollower
from app.detector import Detector, Record
from app.errors import Fenced, TransactionFailed
from app.runtime.localstate import restart_afresh
from app.runtime.producer import DeliveringProducer, Topic
from app.runtime.state import TableState
from app.runtime.transactions import Transactions
from app.runtime.watches import (
    CHECK_S,
    STALL_S,
    Excuse,
    ProgressWatch,
    input_progress,
    waiting,
)

log = logging.getLogger(__name__)

pair_windows = app.Table(
    "pair-windows",
    partitions=settings.partitions,
    key_type=bytes,
    value_type=bytes,
    help="Open sliding-window panes per (sender, receiver) pair, and each partition's watermark",
    options=settings.rocksdb_options,
)

inputs = app.topic(
    settings.transactions_topic,
    settings.pairs_topic,
    settings.ticks_topic,
    key_type=bytes,
    value_type=bytes,
    partitions=settings.partitions,
    internal=True,
)


def restart(reason: str) -> None:
    """Restart in place with the tables rebuilt (app.runtime.localstate), unless the worker is
    stopping anyway: a stop that takes long (Kafka unreachable) is no stall."""
    if not app.should_stop:
        restart_afresh(reason)


def producer() -> DeliveringProducer:
    return cast(DeliveringProducer, app.producer)  # app.app makes it one


detector = Detector(
    settings,
    TableState(pair_windows, producer, generation=lambda: app.consumer_generation_id),
    fraud=Topic(producer, settings.fraud_topic),
    dead_letters=Topic(producer, settings.dlq_topic),
    rekeyed=Topic(producer, settings.pairs_topic),
    restart=restart,
)


control = ControlFollower(settings, detector.set_threshold)


@app.task  # type: ignore[untyped-decorator]
async def follow_control() -> None:
    """Apply runtime threshold changes (caught up once before the worker joined the group)."""
    try:
        await control.follow()
    finally:
        await control.stop()


@app.agent(inputs)
async def detect(stream: Any) -> None:
    """The detector's agent. Faust subscribes its topics and assigns their partitions; their
    records reach the detector through the consumer, a batch per partition (:func:`take`), not
    one by one through this stream, which stays empty."""
    async for _ in stream:
        pass


MARKERS_S = 1.0  # exactly-once: between two looks for restores waiting on a marker

# exactly-once: a Kafka transaction per batch (app.runtime.transactions)
transactions = Transactions(settings.app_id, producer) if settings.exactly_once else None


async def take(tp: TP, records: Sequence[Record]) -> bool:
    """One batch of an input partition, oldest first; True once it is processed (the consumer
    commits it), False if the partition was lost meanwhile (its new owner processes it from the
    committed offset). Exactly-once: the batch is one transaction with its next offset, which
    commits while the next batches are processed."""
    try:
        async with (
            transactions.batch(tp, records[-1].offset + 1, partial(_failed, tp, records))
            if transactions is not None
            else contextlib.nullcontext()
        ):
            if tp.topic == settings.transactions_topic:
                await detector.on_transactions(tp.partition, records)
            elif tp.topic == settings.pairs_topic:
                await detector.on_rekeyed(tp.partition, records)
            else:
                await detector.on_tick(tp.partition)
    except TransactionFailed as failed:  # exactly-once: nothing of the batch is visible
        _failed(tp, records, failed)
        return False
    except Fenced as fenced:
        log.warning(
            "skipped %s/%d@%d-%d: %s",
            tp.topic,
            tp.partition,
            records[0].offset,
            records[-1].offset,
            fenced,
        )
        return False
    return True


def _failed(tp: TP, records: Sequence[Record], failed: TransactionFailed) -> None:
    """Exactly-once: the transaction of a batch failed, nothing of it is visible, and the local
    tables hold it: the worker restarts with them rebuilt."""
    log.error(
        "the transaction of %s/%d@%d-%d failed (%s): restarting with the tables rebuilt",
        tp.topic,
        tp.partition,
        records[0].offset,
        records[-1].offset,
        failed.__cause__ or failed,
    )
    restart(f"a transaction failed on {tp.topic}/{tp.partition}")


async def watch_progress() -> None:
    """Restart the worker when a changelog partition it restores is no longer read, or when an
    input partition it owns has records waiting and none committed (app.runtime.watches).
    Started with the app, not as a Faust timer: those start only after the first recovery. It
    reads what Faust keeps, and asks Faust's consumer nothing: a call into the consumer's
    thread can wait there, and Faust's own calls queue behind it. End offsets and the group's
    commits come from clients of its own."""
    recovering, reading = ProgressWatch(), ProgressWatch()
    rebalancing = Excuse(app.conf.broker_rebalance_timeout)

    async def look(offsets: BrokerOffsets) -> None:
        stuck = _stuck_recovery(recovering)
        unread = await _stuck_input(reading, rebalancing, offsets)
        if stuck:
            restart(f"restoring {_named(stuck)}: records waiting and none read for {STALL_S:.0f}s")
        if unread:
            restart(f"{_named(unread)}: records waiting and none committed for {STALL_S:.0f}s")

    await _every(CHECK_S, look, "the progress watch failed; it looks again")


async def end_restores_at_markers() -> None:
    """Exactly-once: once a second, end the restores that wait for a transaction's marker
    (:func:`_past_markers`, which needs two looks): at the progress watch's pace (CHECK_S) a
    restore waited up to 10 s past its last record. A look that fails is followed by the next;
    the progress watch restarts a restore stuck for good."""
    await _every(MARKERS_S, _past_markers, "the look for transaction markers failed")


async def _every(
    seconds: float, look: Callable[[BrokerOffsets], Awaitable[None]], failed: str
) -> None:
    """``look`` every ``seconds`` until the worker stops, with a client of its own for the
    broker's offsets; a look that fails is logged (``failed``), never stops the worker."""
    offsets = BrokerOffsets()
    try:
        while not app.should_stop:
            await asyncio.sleep(seconds)
            try:
                await look(offsets)
            except Exception:
                log.exception(failed)
    finally:
        await offsets.stop()


def _named(partitions: list[Any]) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(partitions))


def _reader(**options: Any) -> AIOKafkaConsumer:
    """A Kafka consumer of the worker's own, beside Faust's: it commits nothing."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        **options,
        **settings.security.client_options(),
    )


async def _past_markers(offsets: BrokerOffsets) -> None:
    """Exactly-once: a changelog partition ends with a transaction's marker, or with an aborted
    transaction, which a read_committed restore never receives, and Faust's recovery waits for
    the last offset (it skips them only when it runs Faust's own transactions). A partition whose
    restore has not moved since the last look, and where a read_committed reader finds nothing
    more up to that offset, is restored: Faust's recovery then ends at its next look."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # on the TableManager
    if not recovery.in_recovery:
        offsets.restored.clear()
        return
    still: dict[TP, tuple[int, int]] = {}  # not moved since the last look: (read, last)
    for tp, last in list(recovery.active_highwaters.items()):
        read = recovery.active_offsets.get(tp)
        if last is None or read is None or read >= last:
            continue
        if offsets.restored.get(tp) == read:
            still[tp] = (read, last)
        offsets.restored[tp] = read
    for tp in await offsets.only_markers(still) if still else ():
        read, last = still[tp]
        log.info("%s: only transaction markers after offset %d: restored", _named([tp]), read)
        recovery.active_offsets[tp] = last


def _stuck_recovery(watch: ProgressWatch) -> list[TP]:
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # on the TableManager
    if not recovery.in_recovery:
        watch.reset()
        return []
    read = {tp: recovery.active_offsets.get(tp) for tp in recovery.active_tps}
    return watch.stuck(read, dict(recovery.active_highwaters), time.monotonic())


class BrokerOffsets:
    """End offsets of partitions and the offsets the worker's group committed there, as the
    broker has them, asked by clients of the worker's own: a reader that joins no group and an
    admin client (started at their first use, again after a start that failed)."""

    def __init__(self) -> None:
        self.reader: AIOKafkaConsumer | None = None
        self.admin: AIOKafkaAdminClient | None = None
        self.failures = 0  # in a row
        self.committed_reader: AIOKafkaConsumer | None = None  # exactly-once (_past_markers)
        self.restored: dict[TP, int] = {}  # changelog partition -> offset restored at the last look

    async def only_markers(self, spans: dict[TP, tuple[int, int]]) -> set[TP]:
        """The partitions of ``spans`` (partition: (offset, last)) where a read_committed reader
        finds no record after ``offset`` up to ``last``: transaction markers or aborted records
        only. All are read at once; one it cannot tell about within 3 s is left out."""
        if self.committed_reader is None:
            reader = _reader(isolation_level="read_committed")
            self.committed_reader = await _started(reader, AIOKafkaConsumer.stop)
        reader = self.committed_reader
        undecided = {TopicPartition(*tp): tp for tp in spans}
        reader.assign(list(undecided))
        for partition, tp in undecided.items():
            reader.seek(partition, spans[tp][0] + 1)
        markers_only: set[TP] = set()
        deadline = time.monotonic() + 3
        while undecided and time.monotonic() < deadline:
            found = await reader.getmany(*undecided, timeout_ms=200)
            for partition, records in found.items():
                if records and partition in undecided:
                    tp = undecided.pop(partition)
                    if records[0].offset > spans[tp][1]:
                        markers_only.add(tp)
            for partition in list(undecided):
                if await reader.position(partition) > spans[undecided[partition]][1]:
                    markers_only.add(undecided.pop(partition))  # read past it: no record
        return markers_only

    async def ends(self, partitions: list[TP]) -> dict[TP, int]:
        if self.reader is None:
            self.reader = await _started(_reader(), AIOKafkaConsumer.stop)
        ends = await self.reader.end_offsets([TopicPartition(*tp) for tp in partitions])
        return {tp: ends[TopicPartition(*tp)] for tp in partitions}

    async def committed(self, partitions: list[TP]) -> dict[TP, int | None]:
        if self.admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=settings.bootstrap, **settings.security.client_options()
            )
            self.admin = await _started(admin, AIOKafkaAdminClient.close)
        found = await self.admin.list_consumer_group_offsets(
            settings.app_id, partitions=[TopicPartition(*tp) for tp in partitions]
        )
        committed = {TP(tp.topic, tp.partition): meta.offset for tp, meta in found.items()}
        missing = [tp for tp in partitions if tp not in committed]
        if missing:  # a group-level error (its coordinator loading, moved) comes back empty
            raise KafkaError(f"no committed offsets of {_named(missing)} in the broker's answer")
        return {tp: committed[tp] if committed[tp] >= 0 else None for tp in partitions}

    def failed(self, exc: KafkaError) -> None:
        """Told when Kafka could not be asked: the first failure in a row and one a minute are
        logged, for a watch that cannot ask looks at nothing."""
        if self.failures % round(STALL_S / CHECK_S) == 0:
            log.warning(
                "the progress watch could not ask Kafka (%d in a row): %r", self.failures + 1, exc
            )
        self.failures += 1

    async def stop(self) -> None:
        try:
            for reader in (self.reader, self.committed_reader):
                if reader is not None:
                    await reader.stop()
        finally:
            if self.admin is not None:
                await self.admin.close()


async def _started(client: Any, close: Any) -> Any:
    try:
        await client.start()
    except BaseException:
        await close(client)
        raise
    return client


async def _stuck_input(
    watch: ProgressWatch, rebalancing: Excuse, offsets: BrokerOffsets
) -> list[TP]:
    """Input partitions (the transactions and their re-keyed copies) with records waiting and
    none committed for STALL_S, by the broker's count: Faust's consumer can stop fetching one
    after a rebalance, or stop committing one, with nothing in its logs (seen after a kill -9:
    a partition kept 1,189 records uncommitted, though processed, until the test gave up).
    Not looked at while tables are restored (the recovery watch looks at those), nor during a
    rebalance, when nothing is committed, unless Faust says it rebalances for longer than
    Kafka lets a rebalance's join last: the stall then counts from there."""
    now = time.monotonic()
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # on the TableManager
    rebalance = app.rebalancing_count if app.rebalancing or recovery.in_recovery else None
    if recovery.in_recovery and _restoring(recovery):
        rebalancing.holds(None, now)  # the restore ended: the rebalance's time counts from then
        watch.reset()
        return []
    if rebalancing.holds(rebalance, now):
        watch.reset()  # a stall counts from the rebalance's end, or from its limit
        return []
    if rebalancing.ran_out():
        log.warning(
            "Faust has said it is rebalancing for %.0fs: looking at its input anyway",
            rebalancing.limit_s,
        )
    inputs = (settings.transactions_topic, settings.pairs_topic)
    partitions = [tp for tp in app.assignor.assigned_actives() if tp.topic in inputs]
    if not partitions:
        watch.reset()
        return []
    try:
        end = await offsets.ends(partitions)
        committed = await offsets.committed(partitions)
    except KafkaError as exc:  # Kafka unreachable: nothing to tell, nothing can come meanwhile
        offsets.failed(exc)
        watch.reset()
        return []
    offsets.failures = 0
    read, last = input_progress(partitions, committed, end)
    stuck = watch.stuck(read, last, now)
    if stuck:
        _tell_consumer_state(stuck, committed)
    return stuck


def _restoring(recovery: Any) -> bool:
    """Changelog records are left to restore."""
    offsets = recovery.active_offsets
    return any(waiting(offsets.get(tp), end) for tp, end in recovery.active_highwaters.items())


def _tell_consumer_state(partitions: list[TP], committed: dict[TP, int | None]) -> None:
    """What Faust's consumer holds for partitions found stuck: where a stall comes from."""
    consumer = app.consumer
    for tp in partitions:
        log.warning(
            "%s: committed %s on the broker, %s by the consumer's count; read up to %s; "
            "processed up to %s",
            _named([tp]),
            committed.get(tp),
            consumer._committed_offset.get(tp),  # type: ignore[attr-defined]
            consumer._read_offset.get(tp),  # type: ignore[attr-defined]
            consumer.processed.get(tp),  # type: ignore[attr-defined]
        )


async def heartbeat() -> None:
    """Beat every half second: the detector's measure of the event loop running (a gap past
    the session timeout is a stopped process). Started with the app, not as a Faust timer:
    those start only after the first recovery, and a worker frozen before that went unseen."""
    while not app.should_stop:
        detector.beat()
        await asyncio.sleep(0.5)


@app.timer(interval=1.0)  # type: ignore[untyped-decorator]
async def tick_idle_partitions() -> None:
    """Idle partitions get a tick record so their watermark moves inside the stream, where
    the table may be written (Faust ties every table write to the event being processed)."""
    assigned = {
        tp.partition: tp
        for tp in app.assignor.assigned_actives()
        if tp.topic == settings.transactions_topic
    }

    def waiting(partition: int) -> bool:
        """Records of the partition are on the broker and not processed yet: it is behind.
        Before its first record, Faust's committed offset tells where processing starts."""
        tp = assigned[partition]
        highwater = app.consumer.highwater(tp)
        committed = app.consumer._committed_offset.get(tp)  # type: ignore[attr-defined]
        processed = detector.next_offset.get(partition, committed)
        return highwater is not None and processed is not None and highwater > processed

    for partition in detector.idle_partitions(assigned, waiting):
        if partition < settings.partitions:
            await producer().send_record(
                settings.ticks_topic, key=None, value=b"tick", partition=partition
            )
        else:  # added to the input: no state there to write, so no tick topic partition either
            with contextlib.suppress(Fenced):  # lost meanwhile: its new owner looks after it
                await detector.on_tick(partition)


@app.on_partitions_revoked.connect  # type: ignore[arg-type]  # Faust passes the TPs
async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
    detector.on_rebalance({tp.partition for tp in revoked})
    if transactions is not None:  # the batch in hand has ended (app.runtime.consumer)
        await transactions.revoke(revoked)


class Membership:
    """The worker's member id in its consumer group, from one assignment to the next."""

    def __init__(self) -> None:
        self.member_id: str | None = None

    def dropped(self, member_id: str) -> bool:
        """Whether the group dropped this worker since the last assignment: it rejoined under a
        new member id, after its session expired while its event loop ran (a network partition,
        which the stall guard does not see). Meanwhile another worker owned its partitions,
        and the batch it processed without knowing it is in its local tables and goes to the
        changelog after the new owner's, its restore point moved past those: as after a stall
        (Detector._check_gap), its local tables must be rebuilt."""
        before, self.member_id = self.member_id, member_id
        return before is not None and before != member_id


membership = Membership()


@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
    kafka = app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]  # aiokafka's
    if membership.dropped(kafka._coordinator.member_id) and not settings.exactly_once:
        restart("the consumer group dropped this worker (it rejoined under a new member id)")
    actives = app.assignor.assigned_actives()
    owned = {tp.partition for tp in actives if tp.topic == settings.transactions_topic}
    counted = app.consumer.topic_partitions(settings.transactions_topic)
    detector.on_rebalance((), assigned=owned, input_partitions=counted)
