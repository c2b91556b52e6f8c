"""A worker's table holding a million pairs, for the memory target, without processing them.

Processing a million transactions takes our worker about ten minutes; restoring its table from
the changelog takes about three. So this writes, into the table's changelog topic, the value the
worker itself would have stored for each pair of the data set (its own pane state and encoding
of the generated transactions, on the partition of the pair's key), until `pairs` distinct pairs
are there. A worker started on that changelog with an empty data dir restores every pair into
RocksDB and then, at its first record (an idle tick), indexes them in memory: its RSS then is
what a worker holding that many pairs uses.
"""

from __future__ import annotations

from app import models
from app.parsing import Transaction
from app.windowing import NO_WATERMARK, PairWindows, Source, WindowSpec
from bench import dataset
from generator.stream import Record

SPEC = WindowSpec(
    size_ms=dataset.SIZE_MS,
    slide_ms=dataset.SLIDE_MS,
    threshold_cents=dataset.THRESHOLD_CENTS,
    max_evidence=100,
)


def pair_states(pairs: int, partitions: int) -> dict[bytes, bytes]:
    """Table key -> stored value for the first `pairs` distinct pairs of the data set."""
    states: dict[bytes, bytes] = {}
    offsets = [0] * partitions
    cache: dict[bytes, int] = {}
    # a generous count: the data set repeats about one pair per hundred transactions
    for record in dataset.records(pairs + pairs // 10):
        key = record.key or b""
        stored = states.get(key)
        if stored is None and len(states) >= pairs:
            continue
        sender, receiver = key.decode().split(":")  # the generator's record, as parsed
        tx = Transaction(record.event_time_ms or 0, sender, receiver, record.amount_cents or 0)
        partition = dataset.murmur_partition(key, partitions, cache)
        state = (
            PairWindows(partition=partition, closed_ms=NO_WATERMARK)
            if stored is None
            else PairWindows.from_json(models.decode(stored))
        )
        state.add(SPEC, tx, Source("k", partition, offsets[partition]), NO_WATERMARK)
        offsets[partition] += 1
        states[key] = models.encode(state.to_json())
    if len(states) < pairs:
        raise RuntimeError(f"the data set gave {len(states):,} distinct pairs, not {pairs:,}")
    return states


async def prefill_changelog(
    bootstrap: str, topic: str, states: dict[bytes, bytes]
) -> tuple[float, int]:
    """Write `states` to the changelog `topic`; returns (seconds, bytes of values)."""
    records = (
        Record(key=key, value=value, event_time_ms=None, kind="normal")
        for key, value in states.items()
    )
    seconds = await dataset.produce(bootstrap, topic, records, len(states), client_id="bench-state")
    return seconds, sum(len(v) for v in states.values())
