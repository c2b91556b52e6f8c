"""The PyFlink peer: the lab job as Flink SQL (HOP window TVF, no Python UDF), over a bounded read.

Runs in the Flink venv (.venv-flink), started by the benchmark:

    .venv-flink/bin/python bench/peers/flink_hop.py --bootstrap HOST:PORT --topic T \
        --output-topic T2 --group G --jar flink-sql-connector-kafka.jar --parallelism 2 \
        --checkpoint-dir DIR

Kafka source (earliest to the offsets that are latest when the job starts, keyed records, one
watermark per partition = max event time, no out-of-orderness) -> parse each line with SQL string
functions (RFC 850 or RFC 3339 timestamps, amounts to cents) -> HOP(10 min, slide 2 min) keyed by
(sender, receiver) -> SUM, COUNT -> total > threshold -> Kafka topic (JSON). Everything runs in the
JVM: Python only builds the plan. Unparsable lines become NULL and are filtered out. Flink's local
mini-cluster with heap state and a checkpoint every 10 s to a local directory (durable, as the
worker's changelog is; the checkpoints also commit the source offsets, which is how the benchmark
follows the job's progress). At the end of the bounded input Flink fires
every window that is still open (its final watermark), which a streaming job at lag 0 has not yet.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pyflink.table import EnvironmentSettings, TableEnvironment

# RFC 850, Go layout: "Sunday, 23-Jul-17 01:06:47 UTC"; RFC 3339: "2017-07-23T01:06:47.250Z".
# (A computed column cannot use another one, hence the repeated SPLIT_INDEX.)
STAMP = "SPLIT_INDEX(line, ';', 0)"
EVENT_TIME = f"""
    CASE
      WHEN POSITION(', ' IN {STAMP}) > 0 THEN TO_TIMESTAMP(
        SUBSTRING({STAMP} FROM POSITION(', ' IN {STAMP}) + 2 FOR 18), 'dd-MMM-yy HH:mm:ss')
      ELSE CAST(TO_TIMESTAMP_LTZ({STAMP}, 'yyyy-MM-dd''T''HH:mm:ss[.SSS]XXX') AS TIMESTAMP(3))
    END
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--group", default="bench-flink", help="consumer group of the source")
    parser.add_argument("--jar", type=Path, required=True, help="flink-sql-connector-kafka")
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--checkpoint-dir", type=Path, required=True)
    parser.add_argument("--checkpoint-seconds", type=int, default=10)
    parser.add_argument("--threshold-cents", type=int, default=10_000_00)
    args = parser.parse_args(argv)

    tables = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = tables.get_config()
    config.set("pipeline.jars", args.jar.resolve().as_uri())
    config.set("parallelism.default", str(args.parallelism))
    config.set("table.local-time-zone", "UTC")
    config.set("pipeline.name", "financial-transactions-hop")
    # Durable like the worker's changelog: checkpoints, which also commit the source's offsets
    # to its consumer group (how the benchmark follows its progress).
    config.set("execution.checkpointing.interval", f"{args.checkpoint_seconds}s")
    config.set("execution.checkpointing.storage", "filesystem")
    config.set("execution.checkpointing.dir", args.checkpoint_dir.resolve().as_uri())
    tables.execute_sql(f"""
        CREATE TABLE transactions (
            line STRING,
            sender AS SPLIT_INDEX(line, ';', 1),
            receiver AS SPLIT_INDEX(line, ';', 2),
            cents AS CAST(CAST(SPLIT_INDEX(line, ';', 3) AS DECIMAL(20, 2)) * 100 AS BIGINT),
            event_time AS {EVENT_TIME},
            WATERMARK FOR event_time AS event_time
        ) WITH (
            'connector' = 'kafka',
            'topic' = '{args.topic}',
            'properties.bootstrap.servers' = '{args.bootstrap}',
            'properties.group.id' = '{args.group}',
            'scan.startup.mode' = 'earliest-offset',
            'scan.bounded.mode' = 'latest-offset',
            'format' = 'raw',
            'raw.charset' = 'UTF-8'
        )
    """)
    tables.execute_sql(f"""
        CREATE TABLE fraud (
            sender STRING,
            receiver STRING,
            window_start TIMESTAMP(3),
            window_end TIMESTAMP(3),
            total_cents BIGINT,
            transfers BIGINT
        ) WITH (
            'connector' = 'kafka',
            'topic' = '{args.output_topic}',
            'properties.bootstrap.servers' = '{args.bootstrap}',
            'format' = 'json',
            'sink.delivery-guarantee' = 'at-least-once'
        )
    """)
    started = time.monotonic()
    result = tables.execute_sql(f"""
        INSERT INTO fraud
        SELECT sender, receiver, window_start, window_end, SUM(cents), COUNT(*)
        FROM TABLE(HOP(TABLE transactions, DESCRIPTOR(event_time),
                       INTERVAL '2' MINUTES, INTERVAL '10' MINUTES))
        WHERE sender IS NOT NULL AND receiver IS NOT NULL AND cents > 0
        GROUP BY sender, receiver, window_start, window_end
        HAVING SUM(cents) > {args.threshold_cents}
    """)
    result.wait()
    print(f"flink job finished in {time.monotonic() - started:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
