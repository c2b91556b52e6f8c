"""Alert latency: broker append time of a `threshold_crossed` alert minus that of the transaction
that crossed the threshold, with the generator sending at a fixed rate and the worker caught up.

Both topics of the phase log append time (`message.timestamp.type=LogAppendTime`), so both
stamps come from the broker's one clock. The crossing transaction is the newest piece of
evidence of the alert's window (one pair lives on one partition, so the highest offset).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.measure import end_offsets

LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


@dataclass(frozen=True)
class Latencies:
    alerts: int  # threshold_crossed alerts read (duplicates of one alert_id counted once)
    samples: list[int]  # milliseconds, one per alert whose crossing transaction was found
    unmatched: int  # evidence truncated, or the transaction not found

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile (q in 0..100), None without samples."""
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return float(ordered[rank - 1])


async def _read_all(bootstrap: str, topic: str) -> Iterable[tuple[int, int, int, bytes]]:
    """(partition, offset, timestamp, value) of every record of `topic` now."""
    ends = await end_offsets(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[int, int, int, bytes]] = []
    try:
        wanted = {TopicPartition(topic, p): end for p, end in ends.items() if end > 0}
        if not wanted:
            return out
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        while wanted:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for tp, messages in batches.items():
                out.extend((m.partition, m.offset, m.timestamp, m.value or b"") for m in messages)
                if messages and messages[-1].offset + 1 >= wanted.get(tp, 0):
                    wanted.pop(tp, None)
        return out
    finally:
        await consumer.stop()


async def measure(bootstrap: str, transactions_topic: str, fraud_topic: str) -> Latencies:
    crossings: dict[str, tuple[int, int, int]] = {}  # alert_id -> (append ms, partition, offset)
    unmatched = 0
    for _, _, stamp, value in await _read_all(bootstrap, fraud_topic):
        alert = json.loads(value)
        if alert.get("kind") != "threshold_crossed" or alert["alert_id"] in crossings:
            continue
        evidence = alert.get("transactions") or []
        if alert.get("truncated") or not evidence:
            unmatched += 1
            crossings[alert["alert_id"]] = (stamp, -1, -1)
            continue
        newest = max(evidence, key=lambda e: e["offset"])
        crossings[alert["alert_id"]] = (stamp, newest["partition"], newest["offset"])
    needed = {(p, o) for _, p, o in crossings.values() if p >= 0}
    appended = {
        (p, o): stamp
        for p, o, stamp, _ in await _read_all(bootstrap, transactions_topic)
        if (p, o) in needed
    }
    samples = []
    for stamp, p, o in crossings.values():
        if p < 0:
            continue
        if (p, o) in appended:
            samples.append(stamp - appended[p, o])
        else:
            unmatched += 1
    return Latencies(len(crossings), samples, unmatched)
