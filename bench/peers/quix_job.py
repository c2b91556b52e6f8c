"""The Quix Streams peer: the same detection as a Quix Streams application (its own venv).

Runs in .venv-quix, started by the benchmark:

    .venv-quix/bin/python bench/peers/quix_job.py --bootstrap HOST:PORT --topic T \
        --output-topic T2 --group G --state-dir DIR

Each line is parsed with the same rules as the worker (bench/peers/transaction_line.py: RFC 850
or RFC 3339, account ids, amounts to integer cents; unusable lines are dropped) and timestamped
with its event time; records are keyed by pair, so windows are grouped by the message key.
Hopping windows of 10 min sliding by 2 min (Flink's SlidingEventTimeWindows, epoch-aligned),
grace 0, sum and count of cents in RocksDB state with changelog topics, emitted when the window
closes, kept when total > threshold, written to a topic as JSON. Windows close by each
partition's latest event time (`final(closing_strategy="partition")`), as ours and Flink's close
by the partition's watermark; Quix's default closes a key's windows only when that key has a
later message, so a pair that goes quiet would never be reported.
At-least-once, Quix's defaults otherwise. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from quixstreams import Application
from quixstreams.dataframe.windows import Count, Sum
from quixstreams.models.serializers import Deserializer
from transaction_line import parse  # bench/peers/, next to this script


class TransactionLine(Deserializer):  # type: ignore[misc]
    def __call__(self, value: bytes, ctx: Any) -> dict[str, Any] | None:
        return parse(value)


def event_time(value: Any, headers: Any, timestamp: int, timestamp_type: Any) -> int:
    return int(value["t"]) if value is not None else timestamp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--threshold-cents", type=int, default=10_000_00)
    args = parser.parse_args(argv)

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    transactions = app.topic(
        args.topic,
        key_deserializer="bytes",
        value_deserializer=TransactionLine(),
        timestamp_extractor=event_time,
    )
    fraud = app.topic(args.output_topic, key_serializer="bytes", value_serializer="json")
    threshold = args.threshold_cents
    sdf = app.dataframe(transactions)
    sdf = sdf.filter(lambda tx: tx is not None)
    sdf = (
        sdf.hopping_window(duration_ms=600_000, step_ms=120_000, grace_ms=0)
        .agg(total=Sum("cents"), count=Count())
        .final(closing_strategy="partition")
    )
    sdf = sdf.filter(lambda window: window["total"] > threshold)
    sdf.to_topic(fraud)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
