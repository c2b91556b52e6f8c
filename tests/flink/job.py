"""The oracle: the lab's FinancialTransactionJob as a PyFlink job, over bounded Kafka reads.

Runs in the Flink venv (`make flink-env`), as a subprocess of tests/flink/test_parity.py or by
hand (`--help`). For each stream (topic): the Flink Kafka connector reads the topic from the
earliest offsets to those latest when the job starts -> each line parsed (tests/flink/lines.py;
unusable lines dropped) -> event-time timestamps and Flink's bounded-out-of-orderness watermark
-> key by (sender, receiver) -> SlidingEventTimeWindows(SIZE, SLIDE) -> sum and count -> keep
total > THRESHOLD. OUTPUT gets one JSON object per line, each with the stream's "topic":

    {"kind": "window", "sender", "receiver", "start", "end" (epoch ms), "cents", "count"}
    {"kind": "late", "partition", "offset"}    every window of it had fired: Flink dropped it
    {"kind": "dropped", "partition", "offset", "reason"}    not a usable line

Exactness (docs/flink-parity.md says why each matters): the parallelism is the topics' partition
count, so each source subtask reads one partition and generates that partition's watermark, and
the window operator takes the minimum over them, as the original job's keyBy did; the watermark
is emitted after every event (EveryEventWatermarks.java), not every 200 ms; Python runs in
thread mode, where a watermark reaches the Python window operator before the next element does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pyflink.common import Configuration, Duration, Row, Types, WatermarkStrategy
from pyflink.common.time import Time
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import (
    AggregateFunction,
    DataStream,
    OutputTag,
    ProcessFunction,
    ProcessWindowFunction,
    StreamExecutionEnvironment,
)
from pyflink.datastream.window import SlidingEventTimeWindows, TimeWindow
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent.parent / ".cache" / "flink"  # filled by `make flink-env` (tests/flink/flink.mk)
JARS = (CACHE / "flink-sql-connector-kafka.jar", CACHE / "parity-watermarks.jar")
sys.path.insert(0, str(HERE))

from lines import MAX_RECORD_BYTES, Unusable, read_line  # noqa: E402


def transaction_type() -> Any:
    """(partition, offset, event time ms, sender, receiver, cents): one usable transaction.

    A new instance per use: PyFlink pickles an OutputTag's type, and a type that has already
    been handed to Java holds a reference to the gateway, which does not pickle."""
    return Types.TUPLE(
        [Types.INT(), Types.LONG(), Types.LONG(), Types.STRING(), Types.STRING(), Types.LONG()]
    )


class ParseLine(ProcessFunction):
    """A Kafka record (line bytes, partition, offset) -> a transaction, or a dropped line."""

    def __init__(self, topic: str, max_bytes: int, dropped: OutputTag) -> None:
        self.topic = topic
        self.max_bytes = max_bytes
        self.dropped = dropped

    def process_element(self, value: Row, ctx: ProcessFunction.Context) -> Iterator[Any]:
        line, partition, offset = value[0], value[1], value[2]
        try:
            tx = read_line(line, self.max_bytes)
        except Unusable as bad:
            record = {"topic": self.topic, "kind": "dropped", "partition": partition}
            yield self.dropped, json.dumps({**record, "offset": offset, "reason": bad.reason})
            return
        yield partition, offset, tx.time_ms, tx.sender, tx.receiver, tx.cents


class EventTime(TimestampAssigner):
    def extract_timestamp(self, value: tuple[Any, ...], record_timestamp: int) -> int:
        return int(value[2])


class SumAndCount(AggregateFunction):
    """The lab job's fold, reduced to what it reported: the total (cents) and the count."""

    def create_accumulator(self) -> tuple[int, int]:
        return 0, 0

    def add(self, value: tuple[Any, ...], accumulator: tuple[int, int]) -> tuple[int, int]:
        return accumulator[0] + int(value[5]), accumulator[1] + 1

    def get_result(self, accumulator: tuple[int, int]) -> tuple[int, int]:
        return accumulator

    def merge(self, a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
        return a[0] + b[0], a[1] + b[1]


class FlaggedWindow(ProcessWindowFunction):
    """A fired window of one pair as an output line, if its total is above the threshold."""

    def __init__(self, topic: str, threshold_cents: int) -> None:
        self.topic = topic
        self.threshold_cents = threshold_cents

    def process(
        self, key: tuple[str, str], context: ProcessWindowFunction.Context, elements: Any
    ) -> Iterator[str]:
        window: TimeWindow = context.window()
        for cents, count in elements:
            if cents > self.threshold_cents:  # strictly greater, as the lab job's filter
                yield json.dumps(
                    {"topic": self.topic, "kind": "window", "sender": key[0],
                     "receiver": key[1], "start": window.start, "end": window.end,
                     "cents": cents, "count": count}
                )  # fmt: skip


class WriteLines(ProcessFunction):
    """Write every result to the output file; one instance, closed before execute() returns."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.out: Any = None

    def open(self, runtime_context: Any) -> None:
        self.out = open(self.path, "w")  # noqa: SIM115  # closed in close()

    def process_element(self, value: str, ctx: ProcessFunction.Context) -> Iterator[Any]:
        self.out.write(value + "\n")
        yield from ()

    def close(self) -> None:
        if self.out is not None:
            self.out.close()


def detect(tables: StreamTableEnvironment, stream: dict[str, Any], bootstrap: str) -> DataStream:
    """The FinancialTransactionJob pipeline for one topic; its output lines (JSON strings)."""
    topic = stream["topic"]
    table = f"`{topic}`"
    # The SQL Kafka connector: Flink's KafkaSource, plus each record's partition and offset so
    # that the events Flink drops can be matched with the worker's dead letters exactly.
    tables.execute_sql(f"""
        CREATE TABLE {table} (
            line BYTES,
            `partition` INT METADATA VIRTUAL,
            `offset` BIGINT METADATA VIRTUAL
        ) WITH (
            'connector' = 'kafka',
            'topic' = '{topic}',
            'properties.bootstrap.servers' = '{bootstrap}',
            'properties.group.id' = 'flink-parity-{topic}',
            'scan.startup.mode' = 'earliest-offset',
            'scan.bounded.mode' = 'latest-offset',
            'format' = 'raw'
        )
    """)
    dropped = OutputTag(f"dropped-{topic}", Types.STRING())
    late = OutputTag(f"late-{topic}", transaction_type())
    parsed = (
        tables.to_data_stream(tables.from_path(table))
        .process(ParseLine(topic, stream["max_record_bytes"], dropped), transaction_type())
        .name(f"parse {topic}")
    )
    watermarks = WatermarkStrategy(
        get_gateway().jvm.fraudparity.EveryEventWatermarks(stream["out_of_orderness_ms"])
    )
    if stream["idle_timeout_ms"]:  # first: PyFlink's with_idleness drops a Python assigner
        watermarks = watermarks.with_idleness(Duration.of_millis(stream["idle_timeout_ms"]))
    watermarks = watermarks.with_timestamp_assigner(EventTime())
    flagged = (
        parsed.assign_timestamps_and_watermarks(watermarks)
        .key_by(lambda tx: (tx[3], tx[4]), key_type=Types.TUPLE([Types.STRING(), Types.STRING()]))
        .window(
            SlidingEventTimeWindows.of(
                Time.milliseconds(stream["size_ms"]), Time.milliseconds(stream["slide_ms"])
            )
        )
        .side_output_late_data(late)
        .aggregate(
            SumAndCount(),
            FlaggedWindow(topic, stream["threshold_cents"]),
            accumulator_type=Types.TUPLE([Types.LONG(), Types.LONG()]),
            output_type=Types.STRING(),
        )
        .name(f"sliding windows {topic}")
    )
    late_lines = flagged.get_side_output(late).map(
        lambda tx: json.dumps(
            {"topic": topic, "kind": "late", "partition": tx[0], "offset": tx[1]}
        ),
        Types.STRING(),
    )
    return flagged.union(late_lines, parsed.get_side_output(dropped))


def run(bootstrap: str, streams: list[dict[str, Any]], output: Path, jars: list[Path]) -> None:
    partitions = {s["partitions"] for s in streams}
    if len(partitions) != 1:
        raise SystemExit(f"one run reads topics of one partition count, got {sorted(partitions)}")
    # Thread mode runs the Python functions inside the JVM the gateway starts next, on the base
    # interpreter's library: this venv's packages (pemja, pyflink) are found on PYTHONPATH only.
    site = [p for p in sys.path if p.endswith("site-packages")]
    os.environ["PYTHONPATH"] = os.pathsep.join([*site, str(HERE)])
    config = Configuration()
    config.set_string("pipeline.jars", ";".join(j.resolve().as_uri() for j in jars))
    # Process mode hands elements to Python in bundles and holds a watermark back until the
    # bundle is done, so the window operator would see it late; thread mode calls Python
    # element by element and advances the watermark in order.
    config.set_string("python.execution-mode", "thread")
    config.set_string("python.executable", sys.executable)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(partitions.pop())
    env.add_python_file(str(HERE / "lines.py"))
    tables = StreamTableEnvironment.create(env)
    outputs = [detect(tables, stream, bootstrap) for stream in streams]
    results = outputs[0].union(*outputs[1:]) if len(outputs) > 1 else outputs[0]
    results.process(WriteLines(str(output))).set_parallelism(1).name("write").print()
    env.execute("financial-transactions")


def seconds_ms(text: str) -> int:
    try:
        millis = Decimal(text) * 1000
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if millis != millis.to_integral_value() or millis < 0:
        raise argparse.ArgumentTypeError(f"{text}: not a whole number of milliseconds >= 0")
    return int(millis)


def dollars_cents(text: str) -> int:
    try:
        cents = Decimal(text) * 100
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in dollars") from None
    if cents != cents.to_integral_value() or cents < 0:
        raise argparse.ArgumentTypeError(f"{text}: not an amount with at most 2 decimals")
    return int(cents)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="The lab's FinancialTransactionJob over bounded Kafka reads (PyFlink).",
        epilog="Several topics: --streams FILE, a JSON list of objects with the keys topic, "
        "partitions and optionally size, slide, threshold, out_of_orderness, idle_timeout, "
        "max_record_bytes "
        "(in the units of the flags); the flags give the defaults.",
    )
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--topic", help="the input topic (or --streams)")
    parser.add_argument("--partitions", type=int, help="the topic's partition count")
    parser.add_argument("--streams", type=Path, help="JSON file: several topics, one job")
    parser.add_argument("--size", default="600", help="window size, seconds (600)")
    parser.add_argument("--slide", default="120", help="window slide, seconds (120)")
    parser.add_argument("--threshold", default="10000", help="flag total > this, dollars")
    parser.add_argument("--out-of-orderness", default="0", help="watermark bound, seconds (0)")
    parser.add_argument(
        "--idle-timeout", default="0", help="withIdleness, seconds (0: no idleness)"
    )
    parser.add_argument("--max-record-bytes", type=int, default=MAX_RECORD_BYTES)
    parser.add_argument("--output", type=Path, required=True, help="JSON lines file to write")
    parser.add_argument(
        "--jars", type=Path, nargs="+", default=list(JARS), help="default: those of make flink-env"
    )
    args = parser.parse_args(argv)
    if args.streams:
        specs = json.loads(args.streams.read_text())
    elif args.topic and args.partitions:
        specs = [{"topic": args.topic, "partitions": args.partitions}]
    else:
        parser.error("give --topic and --partitions, or --streams")
    defaults = {
        "size": args.size,
        "slide": args.slide,
        "threshold": args.threshold,
        "out_of_orderness": args.out_of_orderness,
        "idle_timeout": args.idle_timeout,
        "max_record_bytes": args.max_record_bytes,
    }
    streams = []
    for spec in specs:
        spec = {**defaults, **spec}
        size, slide = seconds_ms(str(spec["size"])), seconds_ms(str(spec["slide"]))
        if size <= 0 or slide <= 0 or size % slide:
            parser.error(f"{spec['topic']}: size must be a positive multiple of slide")
        streams.append(
            {
                "topic": spec["topic"],
                "partitions": int(spec["partitions"]),
                "size_ms": size,
                "slide_ms": slide,
                "threshold_cents": dollars_cents(str(spec["threshold"])),
                "out_of_orderness_ms": seconds_ms(str(spec["out_of_orderness"])),
                "idle_timeout_ms": seconds_ms(str(spec["idle_timeout"])),
                "max_record_bytes": int(spec["max_record_bytes"]),
            }
        )
    run(args.bootstrap, streams, args.output, args.jars)
    return 0


if __name__ == "__main__":
    sys.exit(main())
