"""Faust wiring: the pair-windows table, the topics, the agent, the idle-tick timer, and the
watches on Faust itself (the heartbeat of the stall guard, the progress watch, offset gaps).

Thin on purpose: each record is handed to :class:`app.detector.Detector` with its partition and
offset. The input topic, the internal re-keyed topic and the internal tick topic all have
TOPIC_PARTITIONS partitions and are read by one agent, so Faust assigns partition N of all three
(and of the table's changelog) to the same worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from faust.types import TP, EventT

from app.app import app, settings
from app.control import ControlFollower
from app.detector import Detector
from app.errors import Fenced
from app.localstate import restart_afresh
from app.progress import CHECK_S, STALL_S, Gaps, ProgressWatch

log = logging.getLogger(__name__)

pair_windows = app.Table(
    "pair-windows",
    partitions=settings.partitions,
    key_type=bytes,
    value_type=bytes,
    help="Open sliding-window panes per (sender, receiver) pair, and each partition's watermark",
    options=settings.rocksdb_options,
)

fraud_topic = app.topic(settings.fraud_topic, key_type=bytes, value_type=bytes)
dlq_topic = app.topic(settings.dlq_topic, key_type=bytes, value_type=bytes)
rekeyed_topic = app.topic(
    settings.pairs_topic,
    key_type=bytes,
    value_type=bytes,
    partitions=settings.partitions,
    internal=True,
)
ticks_topic = app.topic(
    settings.ticks_topic,
    key_type=bytes,
    value_type=bytes,
    partitions=settings.partitions,
    internal=True,
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
    """Restart in place with the tables rebuilt (app.localstate), unless the worker is stopping
    anyway: a stop that takes long (Kafka unreachable) is no stall."""
    if not app.should_stop:
        restart_afresh(reason)


detector = Detector(
    settings,
    pair_windows,  # a Faust table is a MutableMapping of keys to values
    fraud=fraud_topic,
    dead_letters=dlq_topic,
    rekeyed=rekeyed_topic,
    restart=restart,
)


control = ControlFollower(settings, detector.set_threshold)
gaps = Gaps()


@app.task  # type: ignore[untyped-decorator]
async def follow_control() -> None:
    """Apply runtime threshold changes (caught up once before the worker joined the group)."""
    try:
        await control.follow()
    finally:
        await control.stop()


@app.agent(inputs)
async def detect(stream: Any) -> None:
    event: EventT[Any]
    async for event in stream.events():
        message = event.message
        if message.topic != settings.ticks_topic:
            await _follow_on(message)
        try:
            if message.topic == settings.transactions_topic:
                await detector.on_transaction(
                    message.partition,
                    message.offset,
                    message.key,
                    message.value,
                    message.timestamp,
                )
            elif message.topic == settings.pairs_topic:
                await detector.on_rekeyed(message.partition, message.value)
            else:
                await detector.on_tick(message.partition)
        except Fenced as fenced:  # its new owner processes it from the committed offset
            log.warning(
                "skipped %s/%d@%d: %s", message.topic, message.partition, message.offset, fenced
            )


async def _follow_on(message: Any) -> None:
    """Input records that never reached this worker (app.progress.Gaps) make it restart in
    place, to read them again from the committed offset: Faust's stream drops records fetched
    under an earlier generation without acknowledging them, and reads them again only at the
    next rebalance, if there is one (the commit cannot pass them meanwhile). Offsets the broker
    no longer holds a record at (retention, transaction markers) are only logged."""
    tp = message.tp
    committed = app.consumer._committed_offset  # type: ignore[attr-defined]
    gap = gaps.skipped(tp, message.offset, lambda: committed.get(tp))
    if gap is None:
        return
    detector.counts["input_gaps"] += 1
    first, last = gap
    held = await _records_between(tp, first, last)
    log.warning(
        "%s/%d: offsets %d to %d never reached this worker (%s)",
        tp.topic,
        tp.partition,
        first,
        last,
        "Faust's consumer skipped them" if held else "the broker holds no record there",
    )
    if held:
        restart(f"{tp.topic}/{tp.partition}: records {first} to {last} were skipped")


async def _records_between(tp: TP, first: int, last: int) -> bool:
    """Whether the broker holds a record at offsets ``first`` to ``last`` of ``tp`` (True if
    it cannot tell: a restart too many is safe, a record never processed is not)."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        **settings.security.client_options(),
    )
    try:
        await reader.start()
        partition = TopicPartition(tp.topic, tp.partition)
        reader.assign([partition])
        reader.seek(partition, first)
        batch = await reader.getmany(partition, timeout_ms=5000, max_records=1)
        records = batch.get(partition, [])
        return not records or records[0].offset <= last  # nothing in 5 s: cannot tell
    except KafkaError:
        return True
    finally:
        await reader.stop()


async def watch_progress() -> None:
    """Restart the worker when a partition it must read is no longer read (app.progress).
    Started with the app, not as a Faust timer: those start only after the first recovery."""
    watch = ProgressWatch()
    while not app.should_stop:
        await asyncio.sleep(CHECK_S)
        try:
            offsets = await asyncio.wait_for(_offsets_to_read(), timeout=2 * CHECK_S)
        except Exception as exc:  # Kafka unreachable, or the assignment moved on meanwhile
            log.debug("offsets not read: %r", exc)
            continue
        if offsets is None:  # a rebalance: partitions move, and are read again
            watch.reset()
            continue
        doing, read, last = offsets
        stuck = watch.stuck(read, last, time.monotonic())
        if stuck:
            names = ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(stuck))
            restart(f"{doing} {names}: records waiting and none read for {STALL_S:.0f}s")


async def _offsets_to_read() -> tuple[str, dict[TP, int], dict[TP, int]] | None:
    """What the worker is reading: the changelog partitions it restores, else its input
    partitions; per partition the offset read and the last one there is. None in a rebalance."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # on the TableManager
    if recovery.in_recovery:
        read = {tp: recovery.active_offsets[tp] for tp in recovery.active_tps}
        return "restoring", read, dict(recovery.active_highwaters)
    if app.rebalancing:
        return None
    topics = {settings.transactions_topic, settings.pairs_topic, settings.ticks_topic}
    owned = [tp for tp in app.consumer.assignment() if tp.topic in topics]
    ends = await app.consumer.highwaters(*owned) if owned else {}
    handed = app.consumer._read_offset  # type: ignore[attr-defined]  # last one to the stream
    read = {}
    for tp in owned:
        # the fetch position moves past transaction markers (an upstream writing with
        # transactions), which are never handed out: the last offset alone would wait on them
        fetched = await app.consumer.position(tp)
        read[tp] = max(
            -1 if handed.get(tp) is None else handed[tp], -1 if fetched is None else fetched - 1
        )
    return "reading", read, {tp: end - 1 for tp, end in ends.items() if end is not None}


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
    assigned = [
        tp.partition
        for tp in app.assignor.assigned_actives()
        if tp.topic == settings.transactions_topic
    ]
    for partition in detector.idle_partitions(assigned):
        await ticks_topic.send(key=None, value=b"tick", partition=partition)


@app.on_partitions_revoked.connect  # type: ignore[arg-type]  # Faust passes the TPs
async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
    detector.on_rebalance({tp.partition for tp in revoked})


@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
    actives = app.assignor.assigned_actives()
    owned = {tp.partition for tp in actives if tp.topic == settings.transactions_topic}
    detector.on_rebalance((), assigned=owned)
    gaps.reset()
