"""The benchmark's input: N generated transactions pre-filled into one topic, and what they hold.

Two generator streams (different seeds, 10,000 accounts, 1 ms mean gap each) merged by event
time give 2 transactions per millisecond of event time, so 1,000,000 transactions span about
8 minutes: less than one 10-minute window, which leaves about a million distinct pairs in the
state at the end (the RSS target's condition) while the windows ending every 2 minutes still
close during the run. Structuring scenarios (one per 2,500 transactions, every third a near
miss) come from the first stream only: scenario account ids depend on the scenario's index, so
two streams with scenarios would mix two cases into one pair.

The hot-pair data set (`HOT`) is the original Go generator's shape: 10 accounts, 90 pairs, each
pair seen over and over. Its streams are twenty times sparser (20 ms mean gap each), so 50,000
transactions span about the same 8 minutes of event time as 1,000,000 cold ones (panes turn over
and 2-minute window ends close during the run); it has no injected scenarios, as every window of
every pair is far above the threshold anyway.

`describe` computes, from the records alone, what any correct detector must find: the windows
above the threshold, all of them (what a bounded Flink job fires at end of input) and those
already closed by each partition's watermark when the input ends (what a streaming job that is
still running has closed at lag 0).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from generator import GeneratorConfig, Record, generate
from generator.runner import RunStats, run
from generator.sink import KafkaSink

ACCOUNTS = 10_000
RECORDS_PER_SCENARIO = 2_500
SIZE_MS = 600_000
SLIDE_MS = 120_000
THRESHOLD_CENTS = 10_000_00


@dataclass(frozen=True)
class Shape:
    """What sets a data set apart: its accounts, the mean gap of each of its two streams, and
    whether the first stream carries injected structuring scenarios."""

    accounts: int
    mean_gap_ms: int
    scenarios: bool


COLD = Shape(accounts=ACCOUNTS, mean_gap_ms=1, scenarios=True)  # ~ one pair per transaction
HOT = Shape(accounts=10, mean_gap_ms=20, scenarios=False)  # 90 pairs, as the Go generator


def records(count: int, seed: int = 1, shape: Shape = COLD) -> Iterator[Record]:
    """The data set: `count` records, in event-time order."""
    first = count // 2
    with_scenarios = GeneratorConfig(
        count=first,
        accounts=shape.accounts,
        seed=seed,
        mean_gap_ms=shape.mean_gap_ms,
        scenarios=max(1, count // RECORDS_PER_SCENARIO) if shape.scenarios else 0,
    )
    plain = GeneratorConfig(
        count=count - first, accounts=shape.accounts, seed=seed + 1, mean_gap_ms=shape.mean_gap_ms
    )
    return heapq.merge(
        generate(with_scenarios), generate(plain), key=lambda r: r.event_time_ms or 0
    )


async def prefill(
    bootstrap: str, topic: str, count: int, seed: int = 1, shape: Shape = COLD
) -> float:
    """Produce the data set into `topic` (keyed by pair, acks=all); returns the seconds taken."""
    batch = records(count, seed, shape)
    return await produce(bootstrap, topic, batch, count, client_id="bench-prefill")


async def produce(
    bootstrap: str, topic: str, batch: Iterator[Record], count: int, *, client_id: str
) -> float:
    """Produce `count` records as fast as the broker takes them, in whole batches (acks=all);
    returns the seconds taken."""
    sink = KafkaSink(bootstrap, topic, bulk=True, client_id=client_id)
    await sink.start()
    started = time.monotonic()
    try:
        await run(batch, sink, rate=0, stop=asyncio.Event(), stats=RunStats())
    finally:
        await sink.stop()
    if sink.acknowledged != count:
        raise RuntimeError(f"{topic}: {sink.acknowledged} of {count} records acknowledged")
    return time.monotonic() - started


@dataclass(frozen=True)
class DataSetFacts:
    """What the pre-filled topic holds, computed from the generated records."""

    transactions: int
    accounts: int
    distinct_pairs: int
    pairs_in_state_at_end: int
    structuring_records: int
    near_miss_records: int
    structuring_share: float
    scenarios_structuring: int
    scenarios_near_miss: int
    event_time_span_s: float
    flagged_windows_all: int
    flagged_windows_closed_at_end: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def murmur_partition(key: bytes, partitions: int, cache: dict[bytes, int]) -> int:
    from aiokafka.partitioner import murmur2

    partition = cache.get(key)
    if partition is None:
        partition = cache[key] = (murmur2(key) & 0x7FFFFFFF) % partitions
    return partition


def describe(count: int, partitions: int, seed: int = 1, shape: Shape = COLD) -> DataSetFacts:
    """Facts about the data set, for the report and for checking each system's output."""
    # pair -> [partition, last event ms]; pane totals only for pairs seen more than once.
    last: dict[bytes, list[int]] = {}
    panes: dict[bytes, dict[int, int]] = defaultdict(dict)
    amounts: dict[bytes, tuple[int, int]] = {}  # first record of a pair: (time, cents)
    partition_of: dict[bytes, int] = {}
    newest = [0] * partitions
    kinds: dict[str, int] = defaultdict(int)
    scenarios: dict[str, set[int]] = defaultdict(set)
    first_ms = None
    for record in records(count, seed, shape):
        key = record.key or b""
        t = record.event_time_ms or 0
        cents = record.amount_cents or 0
        first_ms = t if first_ms is None else first_ms
        kinds[record.kind] += 1
        if record.scenario is not None:
            scenarios[record.scenario.type].add(record.scenario.index)
        p = murmur_partition(key, partitions, partition_of)
        newest[p] = max(newest[p], t)
        entry = last.get(key)
        pane = t - t % SLIDE_MS
        if entry is None:
            last[key] = [p, t]
            amounts[key] = (t, cents)
            continue
        entry[1] = t
        pair_panes = panes[key]
        if not pair_panes:  # second record of the pair: count the first one too
            t0, c0 = amounts[key]
            pair_panes[t0 - t0 % SLIDE_MS] = c0
        pair_panes[pane] = pair_panes.get(pane, 0) + cents
    flagged_all = flagged_closed = 0
    for key, pair_panes in panes.items():
        watermark = newest[last[key][0]]
        starts = {s - k * SLIDE_MS for s in pair_panes for k in range(SIZE_MS // SLIDE_MS)}
        for start in starts:
            total = sum(pair_panes.get(start + k * SLIDE_MS, 0) for k in range(SIZE_MS // SLIDE_MS))
            if total > THRESHOLD_CENTS:
                flagged_all += 1
                if start + SIZE_MS <= watermark - watermark % SLIDE_MS:
                    flagged_closed += 1
    in_state = 0
    for partition, t in last.values():
        watermark = newest[partition] - newest[partition] % SLIDE_MS
        if t - t % SLIDE_MS > watermark - SIZE_MS:  # its newest pane is in an open window
            in_state += 1
    scenario_records = kinds["structuring"] + kinds["near_miss"]
    return DataSetFacts(
        transactions=count,
        accounts=shape.accounts,
        distinct_pairs=len(last),
        pairs_in_state_at_end=in_state,
        structuring_records=kinds["structuring"],
        near_miss_records=kinds["near_miss"],
        structuring_share=round(scenario_records / max(1, count), 5),
        scenarios_structuring=len(scenarios["structuring"]),
        scenarios_near_miss=len(scenarios["near_miss"]),
        event_time_span_s=round((max(newest) - (first_ms or 0)) / 1000, 1),
        flagged_windows_all=flagged_all,
        flagged_windows_closed_at_end=flagged_closed,
    )
