"""Event time never stalls: input partitions without records, partitions that fall silent and
partitions added to the input topic, on the real broker (docs/semantics.md, idle partitions).

Each stream is in time order and ends with a closing transaction on the partitions that had
data only: the others must leave the minimum of re-keyed state by being idle for IDLE_TIMEOUT,
or no window would close. The expected window_closed set is the reference's over the same
records (tests/reference.py).
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from generator import GeneratorConfig, generate
from tests.integration.kafka_io import Written, alerts_by_kind, produce, read_until
from tests.integration.pipeline import TIMEOUT, Pipeline, assert_alerts, expect_in_order

IDLE_TIMEOUT = 4
STREAM = GeneratorConfig(
    count=1500, accounts=30, seed=41, layout="rfc3339", mean_gap_ms=800, scenarios=6, keyed=False
)
MINUTE = 60_000


def started(pipeline: Pipeline, workers: int = 1, **env: str) -> None:
    """Workers that idle input partitions after IDLE_TIMEOUT, ready before any record."""
    pipeline.env.update({"IDLE_TIMEOUT": str(IDLE_TIMEOUT), **env})
    for ordinal in range(workers):
        pipeline.worker(ordinal)
    for worker in pipeline.workers:
        worker.wait_ready(TIMEOUT)


def idle_partitions(pipeline: Pipeline) -> set[int]:
    """The input partitions the workers' gauges show idle."""
    shown = [w.metrics() for w in pipeline.workers]
    return {
        p for p in range(8) if any(m.get(f'fraud_input_idle{{partition="{p}"}}') for m in shown)
    }


async def held_until_idle(pipeline: Pipeline, empty: set[int]) -> None:
    """No window closes before the partitions ``empty`` (which never get a record) are idle.
    Each look reads the alerts, then the gauges: an alert read was written before the gauges
    were read, and a partition without records, once idle, stays idle. (A bound in time would
    not hold: a partition's idle time counts from the first look after its assignment, and
    after a rebalance that can come before the worker is ready again.)"""

    def first_closed(records: list[Written]) -> bool:
        if not alerts_by_kind(records, "window_closed"):
            return False
        not_idle = empty - idle_partitions(pipeline)
        assert not not_idle, f"a window closed while partitions {sorted(not_idle)} were not idle"
        return True

    await read_until(
        pipeline.bootstrap,
        pipeline.topics["fraud"],
        first_closed,
        timeout=TIMEOUT,
        what="a window_closed alert",
        client_options=pipeline.client_options,
    )


async def send(pipeline: Pipeline, cfg: GeneratorConfig, partition_of: list[int]) -> list[Written]:
    """The generator's records, record i to partition ``partition_of[i]``; then the closing
    transactions on those partitions only."""
    records = [(r.key, r.value) for r in generate(cfg)]
    assert len(records) == len(partition_of)
    written = await produce(
        pipeline.bootstrap,
        pipeline.topics["transactions"],
        records,
        partitions=partition_of,
        client_options=pipeline.client_options,
    )
    used = sorted(set(partition_of))
    return written + await pipeline.close_windows(written, keyed=cfg.keyed, partitions=used)


async def closes_every_window(pipeline: Pipeline, written: list[Written], keyed: bool) -> float:
    """Wait for the exact window_closed set; seconds from the last record sent to the last
    alert read."""
    sent = time.monotonic()
    expected = expect_in_order(written)
    assert len(expected.closed) >= 5, len(expected.closed)
    fraud, _ = await pipeline.wait_for(expected)
    assert_alerts(fraud, expected, crossing_order=keyed)
    took = time.monotonic() - sent
    print(f"{len(written)} records, {len(expected.closed)} windows closed, {took:.1f}s")
    return took


def wait_state_emptied(pipeline: Pipeline, written: list[Written]) -> None:
    """State does not grow without bound: the pairs left are the closing transactions' own,
    whose windows stay open (nothing comes after them)."""
    closing = {w.value.split(b";")[2] for w in written if w.value and b";_end;" in w.value}
    worker = pipeline.workers[0]
    worker.wait_until(
        lambda: sum(w.metric("fraud_open_pairs") for w in pipeline.workers) <= len(closing),
        f"at most {len(closing)} open pairs",
        TIMEOUT,
    )


@pytest.mark.parametrize("workers", [1, 2])
async def test_unkeyed_records_on_one_of_eight_partitions(pipeline: Pipeline, workers: int) -> None:
    # with 2 workers, one of them owns only partitions that never get a record
    empty = set(range(8)) - {5}  # never get a record
    started(pipeline, workers)
    written = await send(pipeline, STREAM, [5] * STREAM.count)
    await held_until_idle(pipeline, empty)
    await closes_every_window(pipeline, written, keyed=False)
    wait_state_emptied(pipeline, written)
    assert empty <= idle_partitions(pipeline)  # and still idle (5 may be too by now)
    assert any(
        'fraud_input_watermark_seconds{partition="5"}' in w.metrics() for w in pipeline.workers
    )


async def test_unkeyed_records_on_three_of_eight_partitions(pipeline: Pipeline) -> None:
    started(pipeline)
    written = await send(pipeline, STREAM, [(1, 4, 6)[i % 3] for i in range(STREAM.count)])
    await closes_every_window(pipeline, written, keyed=False)
    wait_state_emptied(pipeline, written)


async def test_keyed_records_on_one_of_eight_partitions(pipeline: Pipeline) -> None:
    started(pipeline)
    keyed = replace(STREAM, keyed=True)
    written = await send(pipeline, keyed, [2] * keyed.count)
    await closes_every_window(pipeline, written, keyed=True)
    wait_state_emptied(pipeline, written)


async def test_a_partition_silent_after_the_first_minute_of_event_time(pipeline: Pipeline) -> None:
    # partition 7 gets records of the first minute only, and is then silent for good: once
    # idle, it no longer holds back the minimum of the re-keyed state
    started(pipeline)
    times = [r.event_time_ms or 0 for r in generate(STREAM)]
    first_minute = times[0] + MINUTE
    partitions = [
        (0, 3, 7)[i % 3] if t < first_minute else (0, 3)[i % 2] for i, t in enumerate(times)
    ]
    assert partitions.count(7) > 10
    written = await send(pipeline, STREAM, partitions)
    await closes_every_window(pipeline, written, keyed=False)
    wait_state_emptied(pipeline, written)


async def test_partitions_added_to_the_input_while_the_worker_runs(pipeline: Pipeline) -> None:
    # 8 partitions, then 10: the new ones are assigned after the next metadata refresh, their
    # records (keyed or not) are re-keyed, and their watermarks join the minimum
    started(pipeline, METADATA_MAX_AGE="2")
    before = replace(STREAM, count=600)
    first = await produce(
        pipeline.bootstrap,
        pipeline.topics["transactions"],
        [(r.key, r.value) for r in generate(before)],
        partitions=[i % 8 for i in range(before.count)],
        client_options=pipeline.client_options,
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.bootstrap, **pipeline.client_options)
    await admin.start()
    try:
        await admin.create_partitions({pipeline.topics["transactions"]: NewPartitions(10)})
    finally:
        await admin.close()
    worker = pipeline.workers[0]
    worker.wait_metric("fraud_assigned_partitions", above=9, timeout=TIMEOUT)
    after = replace(STREAM, seed=42, start_ms=STREAM.start_ms + 180 * MINUTE)
    records = [(r.key, r.value) for r in generate(after)]
    keyed_too = [
        (f"{v.split(b';')[1].decode()}:{v.split(b';')[2].decode()}".encode() if i % 2 else k, v)
        for i, (k, v) in enumerate(records)
    ]
    second = await produce(
        pipeline.bootstrap,
        pipeline.topics["transactions"],
        keyed_too,
        partitions=[8 + i % 2 for i in range(len(records))],
        client_options=pipeline.client_options,
    )
    written = first + second
    written += await pipeline.close_windows(written, keyed=False, partitions=range(10))
    await closes_every_window(pipeline, written, keyed=False)
    wait_state_emptied(pipeline, written)
    assert 'fraud_input_watermark_seconds{partition="9"}' in worker.metrics()
