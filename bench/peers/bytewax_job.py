"""The Bytewax peer: the same detection as a Bytewax dataflow, one worker (its own venv).

Runs in .venv-bytewax, started by the benchmark:

    .venv-bytewax/bin/python bench/peers/bytewax_job.py --bootstrap HOST:PORT --topic T \
        --output-topic T2

Kafka source (every partition from its start to its end when read: a bounded read, as the PyFlink
peer's) -> each line parsed with the same rules as the worker (bench/peers/transaction_line.py;
unusable lines are dropped) -> keyed by SENDER:RECEIVER -> `fold_window` over a `SlidingWindower`
of 10 min sliding by 2 min (epoch-aligned) on an `EventClock` of the line's event time, waiting 0
-> sum and count of cents -> windows with total > threshold to a topic as JSON. Bytewax's
defaults otherwise: its event clock is one per key, advanced by the key's own records and by the
system time since its newest one; at the end of the input it closes every window still open.
No recovery (Bytewax's Kafka source keeps its offsets in recovery snapshots only, never in a
consumer group), so the benchmark follows the job by Bytewax's own metric: `item_inp_count` of
the windowing step, served on BYTEWAX_DATAFLOW_API_PORT when BYTEWAX_DATAFLOW_API_ENABLED is set.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.operators.windowing import EventClock, SlidingWindower, fold_window
from bytewax.run import cli_main
from transaction_line import parse  # bench/peers/, next to this script

SIZE = timedelta(minutes=10)
SLIDE = timedelta(minutes=2)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WINDOW_STEP = "windows"  # the step whose item_inp_count the benchmark reads


def event_time(tx: dict[str, Any]) -> datetime:
    return EPOCH + timedelta(milliseconds=tx["t"])


def fold(acc: list[int], tx: dict[str, Any]) -> list[int]:
    acc[0] += tx["cents"]
    acc[1] += 1
    return acc


def merge(a: list[int], b: list[int]) -> list[int]:
    return [a[0] + b[0], a[1] + b[1]]


def build(
    bootstrap: str, topic: str, output_topic: str, threshold_cents: int, batch_size: int
) -> Dataflow:
    flow = Dataflow("financial-transactions-sliding")
    brokers = [bootstrap]
    messages = op.input(
        "transactions", flow, KafkaSource(brokers, [topic], tail=False, batch_size=batch_size)
    )
    parsed = op.filter_map("parse", messages, lambda msg: parse(msg.value))
    keyed = op.key_on("pair", parsed, lambda tx: f"{tx['sender']}:{tx['receiver']}")
    windows = fold_window(
        WINDOW_STEP,
        keyed,
        EventClock(event_time, wait_for_system_duration=timedelta(0)),
        SlidingWindower(length=SIZE, offset=SLIDE, align_to=EPOCH),
        lambda: [0, 0],
        fold,
        merge,
    )

    def flagged(key_window: tuple[str, tuple[int, list[int]]]) -> KafkaSinkMessage[bytes, bytes]:
        pair, (window_id, (total, count)) = key_window
        sender, receiver = pair.split(":", 1)
        start_ms = window_id * int(SLIDE.total_seconds() * 1000)
        value = {
            "sender": sender,
            "receiver": receiver,
            "window_start": start_ms,
            "window_end": start_ms + int(SIZE.total_seconds() * 1000),
            "total_cents": total,
            "transfers": count,
        }
        return KafkaSinkMessage(pair.encode(), json.dumps(value).encode())

    over = op.filter("over", windows.down, lambda key_window: key_window[1][1][0] > threshold_cents)
    op.output("fraud", op.map("alert", over, flagged), KafkaSink(brokers, output_topic))
    return flow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--threshold-cents", type=int, default=10_000_00)
    parser.add_argument("--batch-size", type=int, default=1000, help="KafkaSource's default")
    args = parser.parse_args(argv)
    flow = build(
        args.bootstrap, args.topic, args.output_topic, args.threshold_cents, args.batch_size
    )
    cli_main(flow, workers_per_process=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
