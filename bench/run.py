"""One benchmark run, phase by phase, on one local broker and two pre-filled topics.

1. start a broker of our own (free ports, data under .run/bench/<stamp>/), create `transactions`
   and `transactions-hot` (8 partitions each) and pre-fill them with the data sets of
   bench.dataset: cold pairs (10,000 accounts) and hot pairs (10 accounts, 90 pairs);
2. the limit: bare aiokafka and confluent-kafka consumers drain it (decode only);
3. our worker, 1 process (at-least-once, then exactly-once) and 2, each from a fresh consumer
   group and empty state, from process start to lag 0 (every record processed and its offset
   committed), with RocksDB, changelog, alerts and dead letters as in production; then 1
   process on the hot pairs;
4. the peers on the same topics, cold then hot: the PyFlink SQL job, the Quix Streams
   application and the Bytewax dataflow;
5. alert latency at fixed generator rates, under each guarantee, on topics of their own with
   broker append times, and as seen by a live read_committed consumer;
6. memory: one worker holding a million pairs, restored from a changelog written for it
   (bench.state);
7. a py-spy profile of one worker draining the topic.

Each measured system gets at most `cap` seconds; a capped run reports the rate of what it had
committed by then. CPU seconds and peak RSS are those of the system's own processes; the broker
(sharing the cores) and the rest of the machine are measured beside them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from app.settings import Settings
from bench import dataset, latency, profile, state
from bench.measure import Child, LagProbe, TreeSampler, end_offsets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from localkafka import LocalKafka, create_topics, free_ports, kafka_version  # noqa: E402

VENV_BIN = Path(sys.executable).parent
FLINK_PYTHON = REPO / ".venv-flink" / "bin" / "python"
QUIX_PYTHON = REPO / ".venv-quix" / "bin" / "python"
BYTEWAX_PYTHON = REPO / ".venv-bytewax" / "bin" / "python"
PARTITIONS = 8
AT_LEAST_ONCE, EXACTLY_ONCE = "at_least_once", "exactly_once"  # PROCESSING_GUARANTEE
TOPIC = "transactions"
HOT_TOPIC = "transactions-hot"
# Bytewax's own counter of the records its windowing step took in (bench/peers/bytewax_job.py)
BYTEWAX_PROGRESS = (
    'bytewax_item_inp_count_total{step_id="financial-transactions-sliding.windows.window.'
    'stateful_batch"'
)
POLL_SECONDS = 0.25
STEADY_MIN_SECONDS = 10.0
RESTORE_SECONDS = 600  # a million pairs restore in about 200 s here
# One timeline point, every 5 s: seconds since start, records committed, RSS MB, CPU seconds.
Point = tuple[float, int, int, float]


@dataclass
class DataSet:
    """One pre-filled input topic: the cold pairs (bench.dataset.COLD) or the hot ones (HOT)."""

    name: str  # "cold" or "hot"
    topic: str
    count: int
    shape: dataset.Shape
    ends: dict[int, int] = field(default_factory=dict)
    facts: dataset.DataSetFacts | None = None

    @property
    def suffix(self) -> str:
        """Of a system's name and label on this data set; the cold one is the default."""
        return "" if self.name == "cold" else f"-{self.name}"

    @property
    def label(self) -> str:
        return "" if self.name == "cold" else f", {self.name} pairs"


@dataclass
class Options:
    count: int = 1_000_000
    hot_count: int = 200_000
    cap_seconds: float = 60.0
    latency_seconds: float = 30.0
    rates: tuple[int, ...] = (100, 1000, 5000)  # 100: the latency without queueing
    profile_seconds: int = 30
    state_pairs: int = 1_000_000
    phases: tuple[str, ...] = ("limit", "worker", "peers", "latency", "state", "profile")
    flink_jar: Path | None = None
    name: str = ""
    results_dir: Path = REPO / "bench" / "results"
    keep_run_dir: bool = False
    notes: list[str] = field(default_factory=list)


def log(message: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", flush=True)


def _busy_cpu() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def app_sha1(root: Path = REPO) -> str:
    """A hash of the worker's code (root/app/*.py), also when it is not committed."""
    digest = hashlib.sha1()
    for path in sorted((root / "app").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return result.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--short", "--untracked-files=no")),
        "app_sha1": app_sha1(),
    }


class Bench:
    def __init__(self, options: Options) -> None:
        self.options = options
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.root = REPO / ".run" / "bench" / stamp
        self.logs = self.root / "logs"
        self.kafka: LocalKafka | None = None
        self.bootstrap = ""
        self.cold = DataSet("cold", TOPIC, options.count, dataset.COLD)
        self.hot = DataSet("hot", HOT_TOPIC, options.hot_count, dataset.HOT)
        self.systems: list[dict[str, Any]] = []
        self.latencies: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self.profile_text = ""
        self.load_at_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())

    # -- the broker and the data ----------------------------------------------------------------

    def start_broker(self) -> None:
        port, controller = free_ports(2)
        self.kafka = LocalKafka(self.root / "kafka", port, controller)
        self.kafka.start()
        self.bootstrap = self.kafka.bootstrap
        log(f"broker up on {self.bootstrap} ({self.root})")

    def stop_broker(self) -> None:
        if self.kafka is not None:
            self.kafka.stop()

    def topics(self, names: dict[str, int], configs: dict[str, str] | None = None) -> None:
        create_topics(self.bootstrap, names, configs)

    async def prefill(self, data: DataSet) -> float:
        self.topics({data.topic: PARTITIONS})
        count = data.count
        log(f"pre-filling {data.topic} with {count:,} transactions ({data.name} pairs)")
        seconds = await dataset.prefill(self.bootstrap, data.topic, count, shape=data.shape)
        data.ends = await end_offsets(self.bootstrap, data.topic)
        if sum(data.ends.values()) != count:
            raise RuntimeError(f"{data.topic} holds {sum(data.ends.values())} records, not {count}")
        log(f"pre-filled in {seconds:.1f}s ({count / seconds:,.0f} records/s)")
        return seconds

    # -- one measured run -----------------------------------------------------------------------

    async def measure(
        self,
        name: str,
        label: str,
        kind: str,
        children: list[Child],
        *,
        done: Callable[[], Awaitable[bool]],
        progress: Callable[[], Awaitable[int]],
        cap: float,
        data: DataSet | None = None,
    ) -> dict[str, Any]:
        """Sample `children` until `done()` or `cap` seconds; the rate is progress() / time."""
        assert self.kafka is not None
        data = data or self.cold
        broker_pid = self.kafka.pid()
        sampler = TreeSampler([c.pid for c in children])
        broker = TreeSampler([broker_pid] if broker_pid else [])
        busy = _busy_cpu()
        sampler.start()
        broker.start()
        started = min(c.started for c in children)
        first_progress: float | None = None
        completed = False
        error = None
        last_report = last_point = time.monotonic()
        timeline: list[Point] = []
        while True:
            await asyncio.sleep(POLL_SECONDS)
            now = time.monotonic()
            if await done():
                completed = True
                break
            dead = [c for c in children if not c.alive() and c.process.returncode != 0]
            if dead:
                error = f"{dead[0].name} exited with {dead[0].process.returncode}"
                log(f"{name}: {error}\n{dead[0].tail()}")
                break
            if first_progress is None and await progress() > 0:
                first_progress = now - started
            if now - started > cap:
                break
            if now - last_point >= 5:
                last_point = now
                committed = await progress()
                rss_mb = sampler.usage.rss_bytes >> 20
                timeline.append((round(now - started, 1), committed, rss_mb, sampler.cpu_seconds()))
            if now - last_report > 15:
                last_report = now
                done_so_far = await progress()
                log(f"{name}: {done_so_far:,} of {data.count:,} after {now - started:.0f}s")
        ended = time.monotonic()
        processed = data.count if completed else await progress()
        usage = await sampler.stop()
        broker_usage = await broker.stop()
        machine = _busy_cpu() - busy
        seconds = ended - started
        result: dict[str, Any] = {
            "name": name,
            "label": label,
            "kind": kind,
            "dataset": data.name,
            "processes": len(children),
            "transactions": processed,
            "seconds": round(seconds, 2),
            "completed": completed,
            "first_progress_s": round(first_progress, 1) if first_progress else None,
            "tx_per_s": round(processed / seconds) if processed else None,
            "tx_per_s_per_process": round(processed / seconds / len(children))
            if processed
            else None,
            "cpu_seconds": round(usage.cpu_seconds, 2),
            "tx_per_cpu_s": round(processed / usage.cpu_seconds)
            if processed and usage.cpu_seconds
            else None,
            "peak_rss_mb": round(usage.peak_rss_bytes / 2**20),
            "peak_process_hwm_mb": round(usage.peak_hwm_bytes / 2**20),
            "os_processes": usage.processes,
            "broker_cpu_seconds": round(broker_usage.cpu_seconds, 2),
            "other_cpu_seconds": round(
                max(0.0, machine - usage.cpu_seconds - broker_usage.cpu_seconds), 1
            ),
        }
        if any(point[1] for point in timeline):
            result["timeline"] = [(t, c, rss, round(cpu, 2)) for t, c, rss, cpu in timeline]
            end = (seconds, processed, 0, usage.cpu_seconds) if completed else None
            result.update(steady(timeline, end))
        if error:
            result["error"] = error
        log(
            f"{name}: {processed:,} tx in {seconds:.1f}s = {result['tx_per_s'] or 0:,} tx/s, "
            f"{result['tx_per_cpu_s'] or 0:,} tx/CPU-s, peak RSS {result['peak_rss_mb']} MB"
            f"{'' if completed else ' (capped)' if not error else ' (FAILED)'}"
        )
        return result

    async def measure_group(
        self,
        group: str,
        name: str,
        label: str,
        kind: str,
        children: list[Child],
        data: DataSet | None = None,
    ) -> dict[str, Any]:
        """Measure a consumer group's processes until they have committed every input offset."""
        data = data or self.cold
        async with LagProbe(self.bootstrap, data.topic, data.ends) as probe:

            async def committed() -> int:
                return await probe.committed(group)

            async def finished() -> bool:
                return await committed() >= probe.total

            return await self.measure(
                name,
                label,
                kind,
                children,
                done=finished,
                progress=committed,
                cap=self.options.cap_seconds,
                data=data,
            )

    # -- the limit ------------------------------------------------------------------------------

    async def drain(self, client: str) -> dict[str, Any]:
        child = Child(
            f"{client}-drain",
            [
                sys.executable,
                "-m",
                "bench.drain",
                client,
                "--bootstrap",
                self.bootstrap,
                "--topic",
                TOPIC,
                "--count",
                str(self.options.count),
            ],
            self.logs / f"{client}-drain.log",
            cwd=REPO,
        )

        async def finished() -> bool:
            return child.process.poll() == 0

        async def progress() -> int:
            return 0

        label = {"aiokafka": "limit: aiokafka drain", "confluent": "limit: confluent-kafka drain"}
        result = await self.measure(
            f"{client}-drain",
            label[client],
            "limit",
            [child],
            done=finished,
            progress=progress,
            cap=self.options.cap_seconds,
        )
        child.stop()
        return result

    async def faust_floor(self, mode: str, driver: str = "kafka") -> dict[str, Any]:
        """Faust's own floor (bench/floor.py): an empty agent, one table write per record, or
        stream.take batches; on Faust's aiokafka driver or its confluent one."""
        name = f"faust-floor-{mode}" + ("" if driver == "kafka" else f"-{driver}")
        run = f"bench-floor-{mode}-{driver}-{uuid.uuid4().hex[:6]}"
        data_dir = self.root / "state" / run
        data_dir.mkdir(parents=True, exist_ok=True)
        child = Child(
            name,
            [str(VENV_BIN / "faust"), "-A", "bench.floor", "worker", "-l", "info"],
            self.logs / f"{name}.log",
            env={
                "FLOOR_MODE": mode,
                "FLOOR_DRIVER": driver,
                "APP_ID": run,
                "KAFKA_BOOTSTRAP": self.bootstrap,
                "FLOOR_TOPIC": TOPIC,
                "DATA_DIR": str(data_dir),
                "PYTHONUNBUFFERED": "1",
            },
            cwd=REPO,
        )
        label = {
            "events": "floor: Faust, empty agent",
            "table": "floor: Faust, 1 table write per tx",
            "take": "floor: Faust, stream.take(1000) batches",
        }[mode] + ("" if driver == "kafka" else f" ({driver} driver)")
        result = await self.measure_group(run, name, label, "limit", [child])
        child.stop()
        return result

    # -- our worker -----------------------------------------------------------------------------

    def worker_env(
        self, app_id: str, fraud: str, dlq: str, topic: str = TOPIC, guarantee: str = AT_LEAST_ONCE
    ) -> dict[str, str]:
        return {
            "PROCESSING_GUARANTEE": guarantee,
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "APP_ID": app_id,
            "TRANSACTIONS_TOPIC": topic,
            "FRAUD_TOPIC": fraud,
            "DLQ_TOPIC": dlq,
            "TOPIC_PARTITIONS": str(PARTITIONS),
            "WEB_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        }

    def start_worker(self, app_id: str, ordinal: int, env: dict[str, str]) -> tuple[Child, int]:
        port = free_ports(1)[0]
        data_dir = self.root / "state" / app_id / f"worker-{ordinal}"
        data_dir.mkdir(parents=True, exist_ok=True)
        # Another version of the worker, e.g. an older commit's app/ unpacked with `git archive`
        # (faust imports the app from its working directory first).
        other = os.environ.get("BENCH_WORKER_PATH")
        child = Child(
            f"{app_id}-{ordinal}",
            [str(VENV_BIN / "faust"), "-A", "app", "worker", "-l", "info"],
            self.logs / f"{app_id}-worker-{ordinal}.log",
            env={
                **env,
                "POD_NAME": f"fraud-worker-{ordinal}",
                "DATA_DIR": str(data_dir),
                "WEB_PORT": str(port),
            },
            cwd=Path(other) if other else REPO,
        )
        return child, port

    async def workers(
        self, count: int, data: DataSet | None = None, guarantee: str = AT_LEAST_ONCE
    ) -> dict[str, Any]:
        data = data or self.cold
        run = f"bench-w{count}{data.suffix}-{uuid.uuid4().hex[:6]}"
        fraud, dlq = f"{run}-fraud", f"{run}-dlq"
        self.topics({fraud: PARTITIONS, dlq: PARTITIONS})
        # A replay of old data: no idle partitions to wait for, so the wall-clock idle rule
        # (which would close every window a while after the drain) is off.
        env = {
            **self.worker_env(run, fraud, dlq, topic=data.topic, guarantee=guarantee),
            "IDLE_TIMEOUT": "0",
        }
        started = [self.start_worker(run, i, env) for i in range(count)]
        children = [child for child, _ in started]
        processes = "1 process" if count == 1 else f"{count} processes"
        eos = guarantee == EXACTLY_ONCE
        label = f"our worker ({processes}{data.label}{', exactly-once' if eos else ''})"
        name = f"worker-{count}{data.suffix}{'-exactly-once' if eos else ''}"
        result = await self.measure_group(run, name, label, "worker", children, data)
        result["guarantee"] = guarantee
        closed = sum(
            _metric(port, 'fraud_alerts_total{kind="window_closed"}') for _, port in started
        )
        for child in children:
            child.stop()
        facts = data.facts
        assert facts is not None
        share = result["transactions"] / data.count
        result["outputs"] = int(closed)
        result["expected_outputs"] = facts.flagged_windows_closed_at_end if share >= 1 else None
        if share >= 1:
            in_state: float = facts.pairs_in_state_at_end
        elif data.name == "hot":
            in_state = facts.distinct_pairs  # all 90 are seen within the first records
        else:
            in_state = facts.distinct_pairs * share  # about: pairs are spread evenly
        result["pairs_in_state"] = round(in_state)
        return result

    # -- the peers ------------------------------------------------------------------------------

    async def pyflink(self, data: DataSet | None = None) -> dict[str, Any]:
        data = data or self.cold
        name = f"pyflink-sql{data.suffix}"
        jar = self.options.flink_jar
        if jar is None or not FLINK_PYTHON.exists():
            reason = "no .venv-flink" if not FLINK_PYTHON.exists() else "no Kafka connector jar"
            log(f"pyflink: skipped ({reason})")
            return {"name": name, "label": f"PyFlink SQL HOP{data.label}", "kind": "peer",
                    "dataset": data.name, "error": f"skipped: {reason}"}  # fmt: skip
        run = f"bench-flink{data.suffix}-{uuid.uuid4().hex[:6]}"
        output = f"{run}-fraud"
        self.topics({output: PARTITIONS})
        child = Child(
            name,
            [
                str(FLINK_PYTHON),
                str(REPO / "bench" / "peers" / "flink_hop.py"),
                "--bootstrap",
                self.bootstrap,
                "--topic",
                data.topic,
                "--output-topic",
                output,
                "--group",
                run,
                "--jar",
                str(jar),
                "--parallelism",
                str(os.cpu_count() or 2),
                "--checkpoint-dir",
                str(self.root / "state" / run),
            ],
            self.logs / f"{name}.log",
            cwd=REPO,
        )
        async with LagProbe(self.bootstrap, data.topic, data.ends) as probe:

            async def finished() -> bool:
                return child.process.poll() == 0

            async def committed() -> int:
                return await probe.committed(run)

            result = await self.measure(
                name,
                f"PyFlink SQL HOP (parallelism {os.cpu_count() or 2}{data.label})",
                "peer",
                [child],
                done=finished,
                progress=committed,
                cap=self.options.cap_seconds,
                data=data,
            )
        child.stop()
        assert data.facts is not None
        result["outputs"] = sum((await end_offsets(self.bootstrap, output)).values())
        result["expected_outputs"] = data.facts.flagged_windows_all if result["completed"] else None
        return result

    async def quix(self, data: DataSet | None = None) -> dict[str, Any]:
        data = data or self.cold
        name = f"quix-streams{data.suffix}"
        if not QUIX_PYTHON.exists():
            log("quix: skipped (no .venv-quix)")
            return {"name": name, "label": f"Quix Streams{data.label}", "kind": "peer",
                    "dataset": data.name, "error": "skipped: no .venv-quix"}  # fmt: skip
        run = f"bench-quix{data.suffix}-{uuid.uuid4().hex[:6]}"
        output = f"{run}-fraud"
        self.topics({output: PARTITIONS})
        child = Child(
            name,
            [
                str(QUIX_PYTHON),
                str(REPO / "bench" / "peers" / "quix_job.py"),
                "--bootstrap",
                self.bootstrap,
                "--topic",
                data.topic,
                "--output-topic",
                output,
                "--group",
                run,
                "--state-dir",
                str(self.root / "state" / run),
            ],
            self.logs / f"{name}.log",
            cwd=REPO,
        )
        label = f"Quix Streams (1 process{data.label})"
        result = await self.measure_group(run, name, label, "peer", [child], data)
        child.stop()
        assert data.facts is not None
        result["outputs"] = sum((await end_offsets(self.bootstrap, output)).values())
        result["expected_outputs"] = (
            data.facts.flagged_windows_closed_at_end if result["completed"] else None
        )
        return result

    async def bytewax(self, data: DataSet | None = None) -> dict[str, Any]:
        """The Bytewax dataflow, one worker, over a bounded read of the topic.

        Its Kafka source commits no offsets (they live in its recovery snapshots, which the job
        does not take), so its progress is Bytewax's own counter of the records its windowing
        step has taken in (`item_inp_count`), read from its metrics endpoint every poll and at
        the cap; done is the job's exit at the end of the input, every window closed and sent.
        """
        data = data or self.cold
        name = f"bytewax{data.suffix}"
        if not BYTEWAX_PYTHON.exists():
            log("bytewax: skipped (no .venv-bytewax)")
            return {"name": name, "label": f"Bytewax{data.label}", "kind": "peer",
                    "dataset": data.name, "error": "skipped: no .venv-bytewax"}  # fmt: skip
        run = f"bench-bytewax{data.suffix}-{uuid.uuid4().hex[:6]}"
        output = f"{run}-fraud"
        self.topics({output: PARTITIONS})
        port = free_ports(1)[0]
        cache = self.root / "state" / run
        cache.mkdir(parents=True, exist_ok=True)
        child = Child(
            name,
            [
                str(BYTEWAX_PYTHON),
                str(REPO / "bench" / "peers" / "bytewax_job.py"),
                "--bootstrap",
                self.bootstrap,
                "--topic",
                data.topic,
                "--output-topic",
                output,
            ],
            self.logs / f"{name}.log",
            env={
                "BYTEWAX_DATAFLOW_API_ENABLED": "true",
                "BYTEWAX_DATAFLOW_API_PORT": str(port),
                # where the API writes dataflow.json (the working directory by default)
                "BYTEWAX_DATAFLOW_API_CACHE_PATH": str(cache),
                "PYTHONUNBUFFERED": "1",
            },
            cwd=REPO,
        )
        seen = 0

        async def finished() -> bool:
            return child.process.poll() == 0

        async def taken_in() -> int:
            nonlocal seen  # the endpoint may not answer while the job starts or ends
            seen = max(seen, int(_metric(port, BYTEWAX_PROGRESS)))
            return seen

        result = await self.measure(
            name,
            f"Bytewax (1 worker{data.label})",
            "peer",
            [child],
            done=finished,
            progress=taken_in,
            cap=self.options.cap_seconds,
            data=data,
        )
        child.stop()
        assert data.facts is not None
        result["progress_counted_by"] = "records taken in by its windowing step (item_inp_count)"
        result["outputs"] = sum((await end_offsets(self.bootstrap, output)).values())
        result["expected_outputs"] = data.facts.flagged_windows_all if result["completed"] else None
        return result

    # -- alert latency --------------------------------------------------------------------------

    async def alert_latency(self, rate: int, guarantee: str = AT_LEAST_ONCE) -> dict[str, Any]:
        run = f"bench-live{rate}-{uuid.uuid4().hex[:6]}"
        tx, fraud, dlq = f"{run}-tx", f"{run}-fraud", f"{run}-dlq"
        self.topics({tx: PARTITIONS, fraud: PARTITIONS}, latency.LOG_APPEND_TIME)
        self.topics({dlq: PARTITIONS})
        env = self.worker_env(run, fraud, dlq, topic=tx, guarantee=guarantee)
        child, port = self.start_worker(run, 0, env)
        deadline = time.monotonic() + 120
        while _get(port, "/ready") != 200:
            if time.monotonic() > deadline or not child.alive():
                child.stop()
                raise RuntimeError(f"latency worker not ready:\n{child.tail()}")
            await asyncio.sleep(0.5)
        seconds = self.options.latency_seconds
        # a consumer of the alerts, read_committed, from before the first record is sent
        async with latency.Visibility(self.bootstrap, fraud, PARTITIONS) as visibility:
            generator = Child(
                f"generator-{rate}",
                [
                    sys.executable,
                    "-m",
                    "generator",
                    "--bootstrap",
                    self.bootstrap,
                    "--topic",
                    tx,
                    "--rate",
                    str(rate),
                    "--duration",
                    str(seconds),
                    "--clock",
                    "real",
                    "--accounts",
                    str(dataset.ACCOUNTS),
                    "--scenarios-every",
                    str(max(0.5, 200 / rate)),  # a few % of the records at most
                    "--seed",
                    "7",
                    "--no-progress",
                ],
                self.logs / f"generator-{rate}.log",
                cwd=REPO,
            )
            sampler = TreeSampler([child.pid])
            sampler.start()
            log(f"latency at {rate:,} tx/s for {seconds:g}s")
            while generator.alive():
                await asyncio.sleep(0.5)
            ends = await end_offsets(self.bootstrap, tx)
            sent = sum(ends.values())
            async with LagProbe(self.bootstrap, tx, ends) as probe:
                grace = time.monotonic() + 20  # to catch up; a worker that cannot is cut off
                while await probe.committed(run) < sent and time.monotonic() < grace:
                    await asyncio.sleep(POLL_SECONDS)
                lag = sent - await probe.committed(run)
            processed = _metric(port, "fraud_records_received_total")
            usage = await sampler.stop()
            child.stop()
        found = await latency.measure(self.bootstrap, tx, fraud, visibility.seen)
        result = {
            "rate": rate,
            "guarantee": guarantee,
            "seconds": seconds,
            "sent": sent,
            "achieved_rate": round(sent / seconds),
            "alerts": found.alerts,
            "samples": len(found.samples),
            "unmatched": found.unmatched,
            "p50_ms": found.percentile(50),
            "p95_ms": found.percentile(95),
            "p99_ms": found.percentile(99),
            "max_ms": float(max(found.samples)) if found.samples else None,
            # until a read_committed consumer had it: under exactly-once, the commit's wait
            "visible_p50_ms": found.percentile(50, found.visible),
            "visible_p99_ms": found.percentile(99, found.visible),
            "lag_at_end": lag,
            "worker_cpu_seconds": round(usage.cpu_seconds, 1),
            "tx_per_cpu_s": round(processed / usage.cpu_seconds) if usage.cpu_seconds else None,
            "worker_peak_rss_mb": round(usage.peak_rss_bytes / 2**20),
        }
        log(
            f"latency at {rate:,} tx/s, {guarantee}: p50 {result['p50_ms']} p95 "
            f"{result['p95_ms']} p99 {result['p99_ms']} ms over {len(found.samples)} alerts "
            f"(visible p99 {result['visible_p99_ms']} ms); lag at end {lag:,}"
        )
        return result

    # -- memory with a million pairs in state ---------------------------------------------------

    async def state_memory(self) -> None:
        """One worker restores `state_pairs` pairs from their changelog and indexes them."""
        pairs = self.options.state_pairs
        run = f"bench-state-{uuid.uuid4().hex[:6]}"
        tx, fraud, dlq = f"{run}-tx", f"{run}-fraud", f"{run}-dlq"
        changelog = f"{run}-pair-windows-changelog"  # the worker's table, as Faust names it
        self.topics({tx: PARTITIONS, fraud: PARTITIONS, dlq: PARTITIONS})
        self.topics({changelog: PARTITIONS}, {"cleanup.policy": "compact"})
        log(f"state: the table values of {pairs:,} pairs into {changelog}")
        states = state.pair_states(pairs, PARTITIONS)
        seconds, value_bytes = await state.prefill_changelog(self.bootstrap, changelog, states)
        del states
        log(f"state: changelog written in {seconds:.1f}s ({value_bytes / 2**20:.0f} MB of values)")
        # the worker's RocksDB sizes, as they are set for this run (ROCKSDB_* in the environment
        # of `make bench` reach the worker, e.g. Faust's own: 64 and 2048)
        sizes = Settings.from_env()
        label = (
            f"{sizes.rocksdb_write_buffer_mb} MB memtables (2 at most), "
            f"{sizes.rocksdb_block_cache_mb} MB block cache per partition"
        )
        # IDLE_TIMEOUT 1 s: the input topic stays empty, so idle ticks are the records that
        # make the worker index its pairs (the stored values have no watermark to move)
        env = {**self.worker_env(run, fraud, dlq, topic=tx), "IDLE_TIMEOUT": "1"}
        result = await self.restore(run, env, pairs)
        self.states.append({"label": label, **result, "value_mb": value_bytes >> 20})

    async def restore(self, run: str, env: dict[str, str], pairs: int) -> dict[str, Any]:
        child, port = self.start_worker(run, 0, env)  # its own, empty data dir
        sampler = TreeSampler([child.pid])
        sampler.start()
        started = time.monotonic()
        ready = indexed = None
        deadline = started + RESTORE_SECONDS
        while indexed is None and time.monotonic() < deadline and child.alive():
            await asyncio.sleep(POLL_SECONDS)
            if ready is None and _get(port, "/ready") == 200:
                ready = time.monotonic() - started
            if ready is not None and _metric(port, "fraud_open_pairs") >= pairs:
                indexed = time.monotonic() - started
        settled_at = time.monotonic() + 5  # what stays once the loading is over
        while indexed is not None and time.monotonic() < settled_at:
            await asyncio.sleep(POLL_SECONDS)
        usage = await sampler.stop()
        held = _metric(port, "fraud_open_pairs")
        child.stop()
        result = {
            "pairs": pairs,
            "pairs_indexed": int(held),
            "restored_s": round(ready, 1) if ready is not None else None,  # since the start
            "indexed_s": round(indexed - ready, 1)  # from ready to every pair indexed
            if indexed is not None and ready is not None
            else None,
            "peak_rss_mb": round(usage.peak_rss_bytes / 2**20),
            "rss_after_mb": round(usage.rss_bytes / 2**20),
            "cpu_seconds": round(usage.cpu_seconds, 1),
        }
        if indexed is None:
            result["error"] = "not every pair indexed" if child.alive() else child.tail()
        log(f"state: {result}")
        return result

    # -- profile --------------------------------------------------------------------------------

    async def profile(self) -> str:
        run = f"bench-prof-{uuid.uuid4().hex[:6]}"
        fraud, dlq = f"{run}-fraud", f"{run}-dlq"
        self.topics({fraud: PARTITIONS, dlq: PARTITIONS})
        env = {**self.worker_env(run, fraud, dlq), "IDLE_TIMEOUT": "0"}
        child, port = self.start_worker(run, 0, env)
        deadline = time.monotonic() + 120
        while _metric(port, "fraud_records_received_total") <= 0:
            if time.monotonic() > deadline or not child.alive():
                child.stop()
                raise RuntimeError(f"profiled worker never started:\n{child.tail()}")
            await asyncio.sleep(0.25)
        seconds = self.options.profile_seconds
        other = os.environ.get("BENCH_WORKER_PATH")
        folded = self.root / "profile.folded"
        log(f"profiling the worker with py-spy for {seconds}s")
        spy = profile.record(child.pid, seconds, folded)
        before = _metric(port, "fraud_records_received_total")
        started = time.monotonic()
        while spy.poll() is None:
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - started
        after = _metric(port, "fraud_records_received_total")
        child.stop()
        if spy.returncode != 0 or not folded.exists():
            raise RuntimeError(f"py-spy failed: {folded.with_suffix('.log').read_text()}")
        summary = profile.summarize(folded)
        header = (
            f"py-spy profile of one worker (faust -A app worker) draining the pre-filled topic\n"
            f"({self.options.count:,} transactions), {seconds}s from its first record; it "
            f"received {after - before:,.0f} records meanwhile ({(after - before) / elapsed:,.0f}"
            f"/s under the profiler).\n"
            + (
                f"worker code from {other} (app/ sha1 {app_sha1(Path(other))})"
                if other
                else f"commit {_git()['commit']}, app/ sha1 {app_sha1()}"
            )
        )
        return profile.render(summary, header)

    # -- the whole run --------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        opts = self.options
        phases = opts.phases
        begun = time.monotonic()
        self.start_broker()
        prefill_seconds = await self.prefill(self.cold)
        hot = opts.hot_count > 0 and bool({"worker", "peers"} & set(phases))
        hot_prefill_seconds = await self.prefill(self.hot) if hot else None
        if set(phases) - {"profile"}:  # the report needs them; a profile alone does not
            log("computing what the data sets hold (expected alerts, pairs in state)")
            for data in (self.cold, self.hot) if hot else (self.cold,):
                data.facts = dataset.describe(data.count, PARTITIONS, shape=data.shape)
        if "limit" in phases:
            self.systems.append(await self.drain("aiokafka"))
            self.systems.append(await self.drain("confluent"))
            self.systems.append(await self.faust_floor("events"))
            self.systems.append(await self.faust_floor("table"))
        if "floor-variants" in phases:
            self.systems.append(await self.faust_floor("take"))
            self.systems.append(await self.faust_floor("events", driver="confluent"))
        if "worker" in phases:
            self.systems.append(await self.workers(1))
            self.systems.append(await self.workers(1, guarantee=EXACTLY_ONCE))
            self.systems.append(await self.workers(2))
            if hot:
                self.systems.append(await self.workers(1, self.hot))
        if "peers" in phases:
            for data in (self.cold, self.hot) if hot else (self.cold,):
                self.systems.append(await self.pyflink(data))
                self.systems.append(await self.quix(data))
                self.systems.append(await self.bytewax(data))
        if "latency" in phases:
            for rate in opts.rates:
                for guarantee in (AT_LEAST_ONCE, EXACTLY_ONCE):
                    self.latencies.append(await self.alert_latency(rate, guarantee))
        if "state" in phases:
            await self.state_memory()
        if "profile" in phases:
            self.profile_text = await self.profile()
        return {
            "name": opts.name,
            "date": dt.date.today().isoformat(),
            "git": _git(),
            "machine": {
                "cores": os.cpu_count(),
                "memory_gib": round(psutil.virtual_memory().total / 2**30),
                "load_at_start": self.load_at_start,
                "python": platform.python_version(),
                "kafka": kafka_version(),
            },
            "config": {
                "count": opts.count,
                "hot_count": opts.hot_count if hot else 0,
                "cap_seconds": opts.cap_seconds,
                "latency_seconds": opts.latency_seconds,
                "profile_seconds": opts.profile_seconds,
                "partitions": PARTITIONS,
            },
            "dataset": self.cold.facts.to_json()
            if self.cold.facts
            else {"transactions": opts.count},
            "hot_dataset": self.hot.facts.to_json() if self.hot.facts else None,
            "prefill_seconds": round(prefill_seconds, 1),
            "hot_prefill_seconds": round(hot_prefill_seconds, 1) if hot_prefill_seconds else None,
            "bench_seconds": round(time.monotonic() - begun),
            "systems": self.systems,
            "latency": self.latencies,
            "state": self.states,
            "notes": [*opts.notes, *self.notes()],
        }

    def notes(self) -> list[str]:
        """How to read the figures of this run."""
        notes = [
            "tx/s: from the start of the system's processes to lag 0 (every record processed "
            "and its offset committed); a capped run counts what it had committed at the cap.",
            "steady: the same from the first commit seen to the last one (or lag 0), start-up "
            "left out (commits are seen every 5 s; PyFlink commits at its 10 s checkpoints).",
            "CPU-s: user+system time of the system's own processes; the broker shares the cores "
            "and is not counted (broker_cpu_seconds in the JSON), nor is the rest of the machine "
            "(the 'other load' column).",
            "Data set: two generator streams merged by event time (2 transactions per ms), so "
            "all pairs are still in state at the end while the 2-minute window ends close during "
            "the run; structuring cases last under a second of event time.",
            "PyFlink: a bounded read with a checkpoint every 10 s (heap state); at the end of "
            "the input it fires every window still open, so its expected outputs are all flagged "
            "windows, while a streaming job at lag 0 has closed only those its watermarks passed.",
            "Alert latency: generator with the real clock, one structuring or near-miss case per "
            "0.5 s (2 s at 100 tx/s; more than the prefill's share, for enough samples), worker "
            "ready before the generator starts, at most 20 s to catch up after it stops. "
            "100 tx/s is no target: it shows the latency without queueing.",
            "Hot pairs: 10 accounts (90 pairs, as the original Go generator), two streams of "
            "20 ms mean gap (50,000 transactions span 8 minutes of event time), no injected "
            "scenarios (every window is far above the threshold anyway), the same cap per system "
            "as the cold set. Its runs are shorter than the cold ones, so start-up weighs more "
            "in them: the hot/cold target is judged on the steady rates.",
            "Bytewax: its Kafka source commits no offsets, so its progress is Bytewax's own "
            "count of the records its windowing step took in (`item_inp_count` on its metrics "
            "endpoint), read every 0.25 s and at the cap; done is the bounded job's exit, every "
            "window closed (like PyFlink's, so its expected outputs are all flagged windows).",
        ]
        busy = [
            (s["name"], s["other_cpu_seconds"] / s["seconds"])
            for s in self.systems
            if s.get("seconds") and s.get("other_cpu_seconds") is not None
        ]
        loaded = [f"{name} {cores:.1f}" for name, cores in busy if cores > 0.2]
        if loaded:
            notes.append(
                "The machine was shared during this run: other processes used on average (cores) "
                + ", ".join(loaded)
                + " of the 2 cores; wall-clock rates suffer, tx per CPU-s much less."
            )
        capped = [s["label"] for s in self.systems if s.get("seconds") and not s.get("completed")]
        if capped:
            notes.append(
                f"Capped at {self.options.cap_seconds:g} s: {', '.join(capped)}; their rate is "
                "what they had committed by then."
            )
        return notes

    def cleanup(self) -> None:
        self.stop_broker()
        if not self.options.keep_run_dir:
            for part in ("kafka", "state"):
                shutil.rmtree(self.root / part, ignore_errors=True)


def steady(timeline: list[Point], end: Point | None) -> dict[str, int | None]:
    """Rates after start-up: from the first commit seen to the last one (or to lag 0), so a
    JVM's start or a first checkpoint does not weigh on a capped run's figure.

    Commits are seen every 5 s; a value is taken at the first point that shows it. A run whose
    first and last commits seen are less than STEADY_MIN_SECONDS apart (a short run: the 50,000
    hot pairs, a small BENCH_COUNT) has no steady rate: a second or two says nothing.
    """
    none: dict[str, int | None] = {"steady_tx_per_s": None, "steady_tx_per_cpu_s": None}
    progressed = [p for p in timeline if p[1] > 0]
    if not progressed:
        return none
    first = progressed[0]
    last = end
    if last is None:
        newest = progressed[-1][1]
        last = next(p for p in progressed if p[1] == newest)
    records, seconds, cpu = last[1] - first[1], last[0] - first[0], last[3] - first[3]
    if seconds < STEADY_MIN_SECONDS:
        return none
    return {
        "steady_tx_per_s": round(records / seconds) if records > 0 and seconds > 0 else None,
        "steady_tx_per_cpu_s": round(records / cpu) if records > 0 and cpu > 0 else None,
    }


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except OSError:
        return 0


def _metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():  # `name` may end inside the labels: `metric{a="b"`
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", ","):
            return float(line.split()[-1])
    return 0.0
