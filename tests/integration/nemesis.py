"""A randomized nemesis on the real broker: a seeded stream and a seeded schedule of faults for
minutes, then an exact check of everything the workers wrote.

Run ``make nemesis`` (NEMESIS_SECONDS, 600; NEMESIS_SEED, random unless given) or
``python -m tests.integration.nemesis --seconds 120 --seed 7``; PROCESSING_GUARANTEE=exactly_once
(or ``--guarantee exactly_once``) runs the workers under exactly-once, and the check then reads
``fraud`` and the DLQ read_committed and also wants 0 duplicates. The schedule is printed at the
start and the same seed replays it (the moments the faults hit the workers' work vary with the
machine's speed).

The stream: structuring bursts, noise, malformed records and out-of-order ones (within the
out-of-orderness bound, so no event is late under either watermark rule: the expected set does
not depend on how the partitions interleave), keyed and unkeyed (by pair). It goes out in
chunks, one before each fault; a fault hits the workers while they work on it. At the end the
faults stop, every worker of the base set runs, closing transactions end the input, and the
outcome must be exactly the reference's (tests/reference.py): 0 missing and 0 unexpected
``window_closed`` alerts, no alert_id with two contents, every bad record in the DLQ with its
reason, every input offset committed (lag 0).

Network faults: each worker reaches the broker through a TCP proxy of its own on 127.0.0.1
(tests/integration/netfaults.py), which the schedule cuts (a partition, within or past the
session timeout, and once with a SIGTERM during the cut: the stop must end within the pod's
grace period), slows or makes lossy, then heals.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from generator import GeneratorConfig, generate
from tests.conftest import LocalKafka, TopicFactory, free_ports  # scripts/ on the path first
from tests.flink.streams import Record, one_route_per_pair
from tests.integration.kafka_io import Written, alerts_by_kind, produce, wait_committed
from tests.integration.netfaults import Proxy
from tests.integration.pipeline import (
    GUARANTEES,
    Pipeline,
    assert_alerts,
    cents,
    dead_letters,
    expect,
)
from tests.integration.workers import WorkerProcess

WORKERS = 3  # the base set; scaling up adds one more
PARTITIONS = 8  # of the input
SESSION_TIMEOUT_S = 8
BOUND_S = 60  # MAX_OUT_OF_ORDERNESS: every out-of-order record is within it
SETTLE_TIMEOUT = 300.0
GRACE_S = 60  # the manifests' terminationGracePeriodSeconds: a stop must end within it
STOP_TIMEOUT_S = 20
LINK_FAULT_S = 10  # how long a link stays slow or lossy
REPORTS = Path(__file__).resolve().parents[2] / ".run"
ERROR = re.compile(r"\[(ERROR|CRITICAL)\]|^fraud-detector: ")  # a worker's last words

# fault kind -> its weight in the schedule
KINDS = {
    "kill -9": 3,
    "SIGSTOP within the session timeout": 2,
    "SIGSTOP past the session timeout": 2,
    "SIGTERM": 2,
    "broker kill -9": 1,
    "data dir deleted": 1,
    "scale up": 1,
    "scale down": 1,
    "cut off within the session timeout": 1,
    "cut off past the session timeout": 2,
    "SIGTERM while cut off": 1,
    "slow link (200 ms +- 100)": 1,
    "lossy link (10% loss)": 1,
}


@dataclass(frozen=True)
class Fault:
    at_s: float  # from the start of the run
    kind: str
    worker: int  # the ordinal it hits (broker faults: -1)


def schedule(seed: int, seconds: float) -> list[Fault]:
    """The faults of a run: one every 4 to 9 s (plus the time each takes). The kinds come in
    shuffled rounds, each holding every kind as often as its weight; a run holds one round at
    least, so even a short one meets them all."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    at = 3.0
    bag: list[str] = []
    while at < seconds or len(faults) < sum(KINDS.values()):
        if not bag:
            bag = [kind for kind, weight in KINDS.items() for _ in range(weight)]
            rng.shuffle(bag)
        kind = bag.pop()
        worker = -1 if kind == "broker kill -9" else rng.randrange(WORKERS)
        faults.append(Fault(round(at, 1), kind, worker))
        at += rng.uniform(4.0, 9.0)
    return faults


def stream(seed: int, seconds: float) -> list[Record]:
    """About 250 transactions per second of the run. A seeded quarter of the pairs is sent
    unkeyed, the others keyed."""
    cfg = GeneratorConfig(
        count=max(2000, int(seconds * 250)), accounts=200, seed=seed, layout="rfc3339",
        mean_gap_ms=150, scenarios=max(10, int(seconds / 6)), malformed=0.01,
        out_of_order=0.01, out_of_order_max_ms=BOUND_S * 1000,
    )  # fmt: skip
    return one_route_per_pair(((r.key, r.value) for r in generate(cfg)), seed + 1)


@dataclass
class Outcome:
    seed: int
    seconds: float
    faults: list[Fault]
    guarantee: str = "at_least_once"
    recovery: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    events: int = 0
    windows: int = 0
    missing: int = 0
    unexpected: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    exits: list[str] = field(default_factory=list)  # workers that exited by themselves, why

    def report(self) -> str:
        lines = [
            f"nemesis seed {self.seed}, {self.guarantee}, {self.seconds:.0f}s of faults, "
            f"{len(self.faults)} faults",
            f"{'fault':38} {'count':>5} {'recovery p50':>13} {'max':>8}",
        ]
        counts = Counter(f.kind for f in self.faults)
        for kind in KINDS:
            times = self.recovery.get(kind, [])
            p50 = f"{statistics.median(times):.1f}s" if times else "-"
            top = f"{max(times):.1f}s" if times else "-"
            lines.append(f"{kind:38} {counts[kind]:>5} {p50:>13} {top:>8}")
        lines.append(
            f"events {self.events}, window_closed expected {self.windows}, missing "
            f"{self.missing}, unexpected {self.unexpected}, duplicates {self.duplicates} (same "
            f"content), dead letters {self.dead_letters}"
        )
        lines.append(f"workers that exited by themselves (restarted): {len(self.exits)}")
        lines.extend(f"  {gone}" for gone in self.exits)
        return "\n".join(lines)

    def as_json(self) -> dict[str, object]:
        counts = Counter(f.kind for f in self.faults)
        return {
            "seed": self.seed,
            "guarantee": self.guarantee,
            "seconds": self.seconds,
            "faults": {
                kind: {
                    "count": counts[kind],
                    "recovery_s": [round(t, 1) for t in self.recovery.get(kind, [])],
                }
                for kind in KINDS
            },
            "events": self.events,
            "window_closed": self.windows,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "duplicates": self.duplicates,
            "dead_letters": self.dead_letters,
            "exits": self.exits,
        }


class Nemesis:
    """One run: its own broker, topics and workers under ``root``."""

    def __init__(
        self,
        root: Path,
        seed: int,
        seconds: float,
        say: Callable[[str], None],
        guarantee: str = "at_least_once",
    ) -> None:
        self.root, self.seed, self.seconds, self.say = root, seed, seconds, say
        self.guarantee = guarantee
        port, controller, *more = free_ports(2 + 2 * (WORKERS + 1))
        proxied = list(zip(more[::2], more[1::2], strict=True))  # (listener, proxy) per worker
        self.broker = LocalKafka(root / "kafka", port, controller, proxied=proxied)
        # worker ordinal -> the proxy its connections to the broker cross
        self.links = [Proxy(shown, to, seed=seed + i) for i, (to, shown) in enumerate(proxied)]
        self.outcome = Outcome(seed, seconds, schedule(seed, seconds), guarantee)
        self.pipeline: Pipeline | None = None
        self.scaled_up = False  # the extra worker runs (scale up), until a scale down

    async def run(self) -> Outcome:
        self.say("\n".join(f"  {f.at_s:6.1f}s  {f.kind} {_target(f)}" for f in self.outcome.faults))
        self.broker.start()
        for link in self.links:
            link.start()
        try:
            self.pipeline = Pipeline(
                self.broker, TopicFactory(self.broker.bootstrap), self.root
            ).under(self.guarantee)  # exactly-once: read read_committed, each alert once
            self.pipeline.env.update(
                {
                    "KAFKA_SESSION_TIMEOUT": str(SESSION_TIMEOUT_S),
                    "MAX_OUT_OF_ORDERNESS": str(BOUND_S),
                    "STOP_TIMEOUT": str(STOP_TIMEOUT_S),
                }
            )
            await self._faults(self.pipeline)
            return await self._check(self.pipeline)
        finally:
            if self.pipeline is not None:
                self.pipeline.stop()
            for link in self.links:
                link.stop()
            self.broker.stop()

    def _worker(self, pipeline: Pipeline, ordinal: int) -> WorkerProcess:
        """Start worker ``ordinal`` (again), its connections through its own link."""
        bootstrap = f"127.0.0.1:{self.links[ordinal].listen_port}"
        return pipeline.worker(ordinal, env={"KAFKA_BOOTSTRAP": bootstrap})

    async def _faults(self, pipeline: Pipeline) -> None:
        for ordinal in range(WORKERS):
            self._worker(pipeline, ordinal)
        for worker in pipeline.workers:
            worker.wait_ready(SETTLE_TIMEOUT)
        records = stream(self.seed, self.seconds)
        faults = self.outcome.faults
        size = -(-len(records) // (len(faults) + 1))
        chunks = [records[i : i + size] for i in range(0, len(records), size)]
        self.written: list[Written] = []
        started = time.monotonic()
        for index, fault in enumerate(faults):
            if index < len(chunks):
                await self._send(pipeline, chunks[index])
            wait = fault.at_s - (time.monotonic() - started)
            if wait > 0:
                await asyncio.sleep(wait)  # the schedule's pace, not a wait for a result
            healed = await self._inject(pipeline, fault)
            took = self._settled(pipeline) - healed
            self.outcome.recovery[fault.kind].append(took)
            self.say(f"  {time.monotonic() - started:6.1f}s  {fault.kind} {_target(fault)}: "
                     f"recovered in {took:.1f}s")  # fmt: skip
        for chunk in chunks[len(faults) :]:
            await self._send(pipeline, chunk)

    async def _send(self, pipeline: Pipeline, chunk: list[Record]) -> None:
        topic = pipeline.topics["transactions"]
        self.written += await produce(pipeline.bootstrap, topic, chunk)

    def _supervise(self, pipeline: Pipeline) -> None:
        """Start again, as the StatefulSet does, a worker that exited by itself (by design
        after a record Kafka did not take); the report lists them, with the last error logged."""
        for worker in pipeline.workers:
            wanted = worker.name != f"fraud-worker-{WORKERS}" or self.scaled_up
            if wanted and not worker.alive():
                assert worker.process is not None
                errors = [line for line in worker.log_text().splitlines() if ERROR.search(line)]
                why = errors[-1].strip() if errors else "no error logged"
                gone = f"{worker.name} exited ({worker.process.returncode}): {why}"
                self.outcome.exits.append(gone)
                self.say(f"          {gone}: restarted")
                worker.start()

    async def _inject(self, pipeline: Pipeline, fault: Fault) -> float:
        self._supervise(pipeline)
        """Inject one fault and heal it; the moment it was healed (time.monotonic())."""
        base = [w for w in pipeline.workers if w.name != f"fraud-worker-{WORKERS}"]
        worker = base[fault.worker] if fault.worker >= 0 else base[0]
        link = self.links[fault.worker if fault.worker >= 0 else 0]
        if fault.kind in ("kill -9", "data dir deleted"):
            worker.kill()
            if fault.kind == "data dir deleted":
                shutil.rmtree(worker.data_dir, ignore_errors=True)
        elif fault.kind == "SIGTERM":
            worker.stop(timeout=GRACE_S)
        elif fault.kind == "SIGTERM while cut off":
            self._stop_cut_off(worker, link)
        elif fault.kind.startswith("SIGSTOP"):
            assert worker.process is not None
            os.killpg(worker.process.pid, signal.SIGSTOP)
            time.sleep(_lasts(fault.kind))  # the fault itself (nothing else runs here)
            os.killpg(worker.process.pid, signal.SIGCONT)
            return time.monotonic()
        elif fault.kind.startswith(("cut off", "slow link", "lossy link")):
            if fault.kind.startswith("cut off"):
                link.cut()
            elif fault.kind.startswith("slow link"):
                link.slow(0.2, 0.1)
            else:
                link.lossy(0.1)
            time.sleep(_lasts(fault.kind))  # the fault itself
            link.heal()
            return time.monotonic()
        elif fault.kind == "broker kill -9":
            pid = self.broker.pid()
            assert pid is not None, "the broker is not running"
            os.kill(pid, signal.SIGKILL)
            self.broker.stop()  # reaps it and forgets its pid
            healed = time.monotonic()
            self.broker.start()
            return healed
        elif fault.kind.startswith("scale"):
            extra = [w for w in pipeline.workers if w.name == f"fraud-worker-{WORKERS}"]
            running = bool(extra) and extra[0].alive()
            if fault.kind == "scale up" and not running:
                self._worker(pipeline, WORKERS)  # started anew, or again
            elif fault.kind == "scale down" and running:
                extra[0].stop(timeout=GRACE_S)
            self.scaled_up = fault.kind == "scale up"
            return time.monotonic()
        worker.start()
        return time.monotonic()

    def _stop_cut_off(self, worker: WorkerProcess, link: Proxy) -> None:
        """SIGTERM while the worker's link is cut: the stop must end within the pod's grace
        period; then the link heals."""
        link.cut()
        try:
            stopping = time.monotonic()
            assert worker.process is not None
            os.killpg(worker.process.pid, signal.SIGTERM)
            worker.exit_code(timeout=GRACE_S)  # fails the run past the grace period
            self.say(f"          the stop while cut off took {time.monotonic() - stopping:.1f}s")
        finally:
            link.heal()

    def _settled(self, pipeline: Pipeline) -> float:
        """Wait until every running worker is ready and each input partition has exactly one
        owner among them (a worker cut off past the session timeout still counts its old ones
        until it rejoins); the moment it was so."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            self._supervise(pipeline)
            running = [w for w in pipeline.workers if w.alive()]
            try:
                ready = all(w.get_or_none("/ready") == (200, {"ready": True}) for w in running)
                owned = sum(w.metric("fraud_assigned_partitions") for w in running) if ready else 0
            except OSError:
                ready = False
            if ready and owned == PARTITIONS:
                return time.monotonic()
            if time.monotonic() > deadline:
                states = {w.name: (w.get_or_none("/ready"), _owned(w)) for w in running}
                raise AssertionError(
                    f"not settled after {SETTLE_TIMEOUT:.0f}s: (ready, partitions) {states}"
                )
            time.sleep(0.2)

    async def _check(self, pipeline: Pipeline) -> Outcome:
        """The faults stop: every worker runs, the input ends, the outcome is exact."""
        self._settled(pipeline)
        written = self.written
        written += await pipeline.close_windows(written, keyed=False, bound_ms=BOUND_S * 1000)
        expected = expect(written, out_of_orderness_ms=BOUND_S * 1000)
        out = self.outcome
        out.events, out.windows = len(written), len(expected.closed)
        fraud, dlq = await pipeline.wait_for(expected)
        closed = alerts_by_kind(fraud, "window_closed")  # fails on two contents for one id
        out.missing = len(set(expected.closed) - set(closed))
        out.unexpected = len(set(closed) - set(expected.closed))
        seen = Counter((w.key, json.loads(w.value or b"{}").get("kind")) for w in fraud)
        out.duplicates = sum(n - 1 for n in seen.values())
        got_dead = dead_letters(dlq)
        out.dead_letters = len(got_dead)
        wrong = sorted(set(got_dead.items()) ^ set(expected.dead.items()))
        totals = sorted(
            i
            for i, a in closed.items()
            if i in expected.closed and (cents(a["total"]), a["count"]) != expected.closed[i]
        )
        problems = {
            "missing": sorted(set(expected.closed) - set(closed))[:10],
            "unexpected": sorted(set(closed) - set(expected.closed))[:10],
            "wrong totals (got, expected)": [
                (i, closed[i]["total"], closed[i]["count"], expected.closed[i]) for i in totals[:10]
            ],
            "dead letters differing": wrong[:10],
        }
        if any(problems.values()):
            raise AssertionError(f"{out.report()}\n{problems}")
        assert_alerts(fraud, expected, crossing_order=False)
        await wait_committed(
            pipeline.bootstrap, pipeline.env["APP_ID"], pipeline.topics["transactions"], 120
        )
        return out


def _owned(worker: WorkerProcess) -> float | None:
    try:
        return worker.metric("fraud_assigned_partitions")
    except OSError:
        return None  # not answering


def _target(fault: Fault) -> str:
    if fault.kind.startswith("scale"):
        return f"(fraud-worker-{WORKERS})"
    return "" if fault.worker < 0 else f"(fraud-worker-{fault.worker})"


def _lasts(kind: str) -> float:
    """How long a pause or a network fault lasts."""
    if kind.endswith("within the session timeout"):
        return SESSION_TIMEOUT_S / 3
    if kind.endswith("past the session timeout"):
        return SESSION_TIMEOUT_S + 4
    return LINK_FAULT_S


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("NEMESIS_SECONDS", "600")),
        help="how long faults are injected [env: NEMESIS_SECONDS] (600)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=int(os.environ.get("NEMESIS_SEED") or random.SystemRandom().randrange(10**6)),
        help="the stream's and the schedule's seed [env: NEMESIS_SEED] (random)",
    )
    parser.add_argument(
        "--guarantee",
        choices=GUARANTEES,
        default=os.environ.get("PROCESSING_GUARANTEE") or "at_least_once",
        help="the workers' processing guarantee [env: PROCESSING_GUARANTEE] (at_least_once)",
    )
    args = parser.parse_args(argv)
    REPORTS.mkdir(exist_ok=True)
    print(
        f"nemesis: seed {args.seed}, {args.guarantee}, {args.seconds:.0f}s; the schedule:",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="nemesis-", dir=REPORTS) as root:
        nemesis = Nemesis(
            Path(root), args.seed, args.seconds, lambda s: print(s, flush=True), args.guarantee
        )
        try:
            outcome = asyncio.run(nemesis.run())
        except Exception as failure:  # the check's, or the run's own: the logs tell
            traceback.print_exc()
            logs = Path(REPORTS / f"nemesis-{args.seed}-logs")
            # the broker's data too: the changelogs and the alerts tell what went wrong
            shutil.copytree(root, logs, dirs_exist_ok=True)
            print(f"nemesis: FAILED with seed {args.seed}: {failure}\nlogs: {logs}", flush=True)
            return 1
    eos = "-exactly-once" if args.guarantee == "exactly_once" else ""
    path = REPORTS / f"nemesis-{args.seed}{eos}.json"
    path.write_text(json.dumps(outcome.as_json(), indent=2) + "\n")
    print(outcome.report() + f"\nPASS (report: {path})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
