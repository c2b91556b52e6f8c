"""Runs one stream through both systems on the real broker and puts their results side by side.

The PyFlink job (job.py) runs in its own venv as a subprocess over a bounded read of the topics;
the worker runs as a `faust -A app worker` process (tests/integration/workers.py) until it has
accounted for every record and closed every window. Both results become an :class:`Outcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from localkafka import free_ports

from tests.flink.lines import Unusable, read_line
from tests.flink.streams import Stream, rfc3339
from tests.integration.kafka_io import Written, alerts_by_kind, decoded, produce
from tests.integration.workers import REPO, WorkerProcess

FLINK_PYTHON = REPO / ".venv-flink" / "bin" / "python"
FLINK_JARS = (
    REPO / ".cache" / "flink" / "flink-sql-connector-kafka.jar",
    REPO / ".cache" / "flink" / "parity-watermarks.jar",
)
JOB = Path(__file__).resolve().parent / "job.py"
FLINK_TIMEOUT = 300.0
WORKER_TIMEOUT = 180.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CLOSING_PAIR = ("_end", "_end")  # sender, receiver prefix of the closing transactions

Position: TypeAlias = tuple[int, int]  # (partition, offset) in the input topic
# (sender, receiver, window start ms, window end ms) -> (total cents, transaction count)
Windows: TypeAlias = dict[tuple[str, str, int, int], tuple[int, int]]


class Outcome(NamedTuple):
    """What one system made of one stream."""

    windows: Windows  # flagged windows, as the worker's window_closed alerts / Flink's output
    late: frozenset[Position]  # dropped because every window of the event had closed
    dropped: dict[Position, str]  # unusable lines, with the worker's dead-letter reason


@dataclass
class Landed:
    """A stream written to its own topics: where each record landed."""

    stream: Stream
    topics: dict[str, str]  # role -> topic name, as tests/conftest.py's TopicFactory makes them
    written: list[Written]  # the stream's records, then the closing transactions

    @property
    def pairs(self) -> set[str]:
        """Every pair of the stream's usable lines (the worker's table keys), closing ones aside."""
        pairs = set()
        for record in self.written:
            try:
                tx = read_line(record.value)
            except Unusable:
                continue
            if tx.sender != CLOSING_PAIR[0]:
                pairs.add(f"{tx.sender}:{tx.receiver}")
        return pairs


async def write(bootstrap: str, stream: Stream, topics: dict[str, str]) -> Landed:
    """Send the stream's records, then one closing transaction to every partition that has
    records (every partition, unless the stream places them), stamped SIZE
    plus the out-of-orderness after the stream's newest event, so the watermark passes the end
    of every window of the data: the end of the input for the worker (the tests run it with
    IDLE_TIMEOUT=0, so wall-clock pauses never move event time, except where partitions without
    records must leave the minimum to let it close anything), as the end of a bounded read
    is for Flink, which fires every window then. Both systems read the closing transactions:
    their windows hold 0.01 and are never flagged, and, each the newest of its partition, they
    make no event of the data late."""
    written = await produce(
        bootstrap, topics["transactions"], stream.records, partitions=stream.partition_of()
    )
    times = []
    for record in written:
        with contextlib.suppress(Unusable):
            times.append(read_line(record.value).time_ms)
    stamp = rfc3339(max(times) + (stream.size + stream.out_of_orderness) * 1000)
    closing = []
    for partition in stream.data_partitions():
        sender, receiver = CLOSING_PAIR[0], f"{CLOSING_PAIR[1]}-{partition}"
        key = f"{sender}:{receiver}".encode() if stream.keyed else None
        closing.append((key, f"{stamp};{sender};{receiver};0.01".encode()))
    written += await produce(
        bootstrap, topics["transactions"], closing, partitions=stream.data_partitions()
    )
    return Landed(stream, topics, written)


# -- Flink ---------------------------------------------------------------------------------------


def run_flink(bootstrap: str, landed: list[Landed], workdir: Path) -> dict[str, Outcome]:
    """One PyFlink job over all ``landed`` streams (one partition count); Outcome by topic."""
    missing = [str(p) for p in (FLINK_PYTHON, *FLINK_JARS) if not p.exists()]
    if missing:
        pytest.fail(
            f"the PyFlink environment is missing ({', '.join(missing)}): run `make flink-env`",
            pytrace=False,
        )
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / "streams.json"
    output = workdir / "flink-output.jsonl"
    spec.write_text(
        json.dumps(
            [
                {
                    "topic": one.topics["transactions"],
                    "partitions": one.stream.partitions,
                    "size": one.stream.size,
                    "slide": one.stream.slide,
                    "threshold": one.stream.threshold,
                    "out_of_orderness": one.stream.out_of_orderness,
                    "idle_timeout": one.stream.idle_timeout,
                }
                for one in landed
            ]
        )
    )
    command = [str(FLINK_PYTHON), str(JOB), "--bootstrap", bootstrap, "--streams", str(spec)]
    command += ["--output", str(output), "--jars", *map(str, FLINK_JARS)]
    log = workdir / "job.log"
    env = {**os.environ, "FLINK_LOG_DIR": str(workdir / "flink-log")}
    env.pop("PYTHONPATH", None)  # the project's venv must not leak into Flink's
    with log.open("wb") as out:
        try:
            result = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=FLINK_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the PyFlink job did not finish in {FLINK_TIMEOUT:.0f}s; log: {log}\n" + _tail(log)
            ) from None
    if result.returncode != 0:
        raise AssertionError(
            f"the PyFlink job failed (exit {result.returncode}); logs: {log}, "
            f"{workdir / 'flink-log'}\n{_tail(log)}"
        )
    by_topic: dict[str, list[dict[str, Any]]] = {one.topics["transactions"]: [] for one in landed}
    for text in output.read_text().splitlines():
        record = json.loads(text)
        by_topic[record["topic"]].append(record)
    return {topic: flink_outcome(records) for topic, records in by_topic.items()}


def flink_outcome(records: Iterable[dict[str, Any]]) -> Outcome:
    windows: Windows = {}
    late: set[Position] = set()
    dropped: dict[Position, str] = {}
    for r in records:
        if r["kind"] == "window":
            key = (r["sender"], r["receiver"], r["start"], r["end"])
            assert key not in windows, f"Flink reported window {key} twice"
            windows[key] = (r["cents"], r["count"])
        elif r["kind"] == "late":
            late.add((r["partition"], r["offset"]))
        else:
            dropped[(r["partition"], r["offset"])] = r["reason"]
    return Outcome(windows, frozenset(late), dropped)


def _tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# -- the worker ----------------------------------------------------------------------------------


def run_worker(
    bootstrap: str, one: Landed, workdir: Path, guarantee: str = "at_least_once"
) -> Outcome:
    """The worker over the stream until it is done; its window_closed alerts and dead letters
    (read read_committed: under exactly-once, what its committed transactions hold)."""
    env = {
        "PROCESSING_GUARANTEE": guarantee,
        "KAFKA_BOOTSTRAP": bootstrap,
        "APP_ID": f"parity-{uuid.uuid4().hex[:8]}",
        "TRANSACTIONS_TOPIC": one.topics["transactions"],
        "FRAUD_TOPIC": one.topics["fraud"],
        "DLQ_TOPIC": one.topics["dlq"],
        "CONTROL_TOPIC": one.topics["control"],  # a threshold set by another test stays there
        "MAX_EVIDENCE": "5",
        # IDLE_TIMEOUT 0 (event time moves with events only, see write()), unless the stream
        # has partitions that never get a record
        **one.stream.settings(),
    }
    worker = WorkerProcess(0, env, workdir, free_ports(1)[0]).start()
    try:
        wait_until_done(worker, one)
    finally:
        worker.stop()
    fraud = asyncio.run(read_all(bootstrap, one.topics["fraud"]))
    dlq = asyncio.run(read_all(bootstrap, one.topics["dlq"]))
    if guarantee == "exactly_once":  # each alert once, in one committed transaction
        ids = Counter((a["alert_id"], a["kind"]) for a in decoded(fraud))
        assert [i for i, n in ids.items() if n > 1] == [], "alerts read twice"
    return worker_outcome(fraud, dlq)


def wait_until_done(worker: WorkerProcess, one: Landed) -> None:
    """Poll until the worker has read every record, accounted for each (processed or dead
    letter), and has no open window left for any pair of the stream (the closing transactions
    close them: the worker's counterpart of the end of Flink's bounded input)."""
    deadline = time.monotonic() + WORKER_TIMEOUT
    open_pairs = sorted(one.pairs)
    counts: dict[str, float] = {}
    while True:
        if not worker.alive():
            raise AssertionError(f"the worker exited:\n{worker.log_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the worker is not done after {WORKER_TIMEOUT:.0f}s with {len(one.written)} "
                f"records: metrics {counts}, {len(open_pairs)} pairs with open windows "
                f"(e.g. {open_pairs[:3]})\n{worker.log_text()[-3000:]}"
            )
        try:
            counts = worker.metrics()
            if accounted(counts) == len(one.written):
                open_pairs = [p for p in open_pairs if has_open_windows(worker, p)]
                if not open_pairs:
                    return
        except OSError:  # the web server starts after the worker's recovery
            pass
        time.sleep(0.5)


def accounted(counts: dict[str, float]) -> int:
    """Records fully handled: received, and either in a window or dead-lettered (for unkeyed
    input both happen after the internal re-keyed topic, so 'received' alone is not enough)."""
    received = counts.get("fraud_records_received_total", 0)
    handled = counts.get("fraud_transactions_processed_total", 0)
    handled += counts.get("fraud_duplicates_skipped_total", 0)
    handled += sum(v for k, v in counts.items() if k.startswith("fraud_dead_letters_total{"))
    return int(min(received, handled))


def has_open_windows(worker: WorkerProcess, pair: str) -> bool:
    status, body = worker.get(f"/pair/{urllib.parse.quote(pair)}")
    assert status == 200, f"/pair/{pair}: {status} {body}"
    return bool(body["windows"])


async def read_all(bootstrap: str, topic: str) -> list[Written]:
    """Every committed record of ``topic`` up to its end offsets now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(partitions)
        records: list[Written] = []
        deadline = time.monotonic() + 60
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end in 60s"
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                records.extend(Written(m.partition, m.offset, m.key, m.value) for m in messages)
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    deadline = time.monotonic() + 10
    while not (partitions := consumer.partitions_for_topic(topic)):
        assert time.monotonic() < deadline, f"topic {topic} has no partitions"
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    return set(partitions)


def worker_outcome(fraud: list[Written], dlq: list[Written]) -> Outcome:
    windows: Windows = {}
    for alert in alerts_by_kind(fraud, "window_closed").values():
        key = (
            alert["sender"],
            alert["receiver"],
            epoch_ms(alert["window_start"]),
            epoch_ms(alert["window_end"]),
        )
        windows[key] = (cents(alert["total"]), alert["count"])
    late: set[Position] = set()
    dropped: dict[Position, str] = {}
    for letter in decoded(dlq):
        position = (letter["partition"], letter["offset"])
        if letter["reason"] == "late":
            late.add(position)
        else:
            dropped[position] = letter["reason"]
    return Outcome(windows, frozenset(late), dropped)


def epoch_ms(rfc3339: str) -> int:
    moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return (moment - EPOCH) // timedelta(milliseconds=1)


def cents(dollars: str) -> int:
    assert re.fullmatch(r"-?[0-9]+\.[0-9]{2}", dollars), dollars
    return int(Decimal(dollars) * 100)


# -- comparison ----------------------------------------------------------------------------------


def differences(ours: Outcome, flink: Outcome) -> list[str]:
    """Every disagreement, field by field, as lines a person can read (empty: equal)."""
    lines = []
    for key in sorted(set(ours.windows) | set(flink.windows)):
        mine, theirs = ours.windows.get(key), flink.windows.get(key)
        if mine != theirs:
            sender, receiver, start, end = key
            lines.append(
                f"window {sender}->{receiver} [{start}, {end}): "
                f"worker {_window(mine)}, Flink {_window(theirs)}"
            )
    for position in sorted(ours.late ^ flink.late):
        who = "the worker only" if position in ours.late else "Flink only"
        lines.append(f"late event at partition/offset {position}: {who}")
    for position in sorted(set(ours.dropped) | set(flink.dropped)):
        mine_reason, theirs_reason = ours.dropped.get(position), flink.dropped.get(position)
        if mine_reason != theirs_reason:
            lines.append(
                f"unusable line at {position}: worker {mine_reason}, Flink {theirs_reason}"
            )
    return lines


def _window(value: tuple[int, int] | None) -> str:
    if value is None:
        return "none"
    total, count = value
    return f"total {Decimal(total) / 100} count {count}"
