"""`make bench`: measure the worker against the limit and its peers; write bench/results/.

    .venv/bin/python -m bench [--count N] [--hot-count N] [--cap SECONDS] [--phases limit,...]

Writes bench/results/<name>.json (every figure), <name>.md (the tables), <name>.png (a chart,
git-ignored) and profile-<name>.txt (py-spy, top functions); prints the ratios. <name> is
today's date unless BENCH_NAME (or --name) says otherwise. Logs of every process are kept in
.run/bench/<stamp>/logs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from pathlib import Path

from bench import report
from bench.run import REPO, Bench, Options, log

PHASES = ("limit", "worker", "peers", "latency", "state", "profile")
# Not in a default run: Faust's floor with stream.take batches and with its confluent driver.
OPTIONAL_PHASES = ("floor-variants",)


def find_flink_jar() -> Path | None:
    """The Flink Kafka SQL connector: FLINK_KAFKA_JAR, else the first one under .cache/."""
    named = os.environ.get("FLINK_KAFKA_JAR")
    if named:
        return Path(named)
    found = sorted((REPO / ".cache").glob("**/flink-sql-connector-kafka*.jar"))
    return found[-1] if found else None


def parse(argv: list[str] | None) -> Options:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--count",
        type=int,
        default=int(env.get("BENCH_COUNT", "1000000")),
        help="transactions in the pre-filled topic [env: BENCH_COUNT, default 1000000]",
    )
    parser.add_argument(
        "--hot-count",
        type=int,
        default=int(env.get("BENCH_HOT_COUNT", "200000")),
        help="transactions in the hot-pair topic (10 accounts) of the worker and peers phases; "
        "0: none [env: BENCH_HOT_COUNT, default 200000]",
    )
    parser.add_argument(
        "--cap",
        type=float,
        default=float(env.get("BENCH_CAP_SECONDS", "60")),
        help="wall-clock cap of each measured system [env: BENCH_CAP_SECONDS, default 60]",
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=float(env.get("BENCH_LATENCY_SECONDS", "30")),
        help="generator run per latency rate [env: BENCH_LATENCY_SECONDS, default 30]",
    )
    parser.add_argument(
        "--profile-seconds",
        type=int,
        default=int(env.get("BENCH_PROFILE_SECONDS", "30")),
        help="py-spy sampling time [env: BENCH_PROFILE_SECONDS, default 30]",
    )
    parser.add_argument(
        "--rates",
        default=env.get("BENCH_RATES", "100,1000,5000"),
        help="generator rates of the latency phase, tx/s [env: BENCH_RATES, default 100,1000,5000]",
    )
    parser.add_argument(
        "--phases",
        default=env.get("BENCH_PHASES", ",".join(PHASES)),
        help=f"comma-separated subset of {','.join(PHASES + OPTIONAL_PHASES)} "
        f"[env: BENCH_PHASES, default {','.join(PHASES)}]",
    )
    parser.add_argument(
        "--name",
        default=env.get("BENCH_NAME", dt.date.today().isoformat()),
        help="results file stem [env: BENCH_NAME, default today's date]",
    )
    parser.add_argument(
        "--state-pairs",
        type=int,
        default=int(env.get("BENCH_STATE_PAIRS", "1000000")),
        help="pairs in the worker's table for the memory phase [env: BENCH_STATE_PAIRS, "
        "default 1000000]",
    )
    parser.add_argument("--keep", action="store_true", help="keep the broker and state dirs")
    args = parser.parse_args(argv)
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = set(phases) - set(PHASES + OPTIONAL_PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return Options(
        count=args.count,
        hot_count=args.hot_count,
        cap_seconds=args.cap,
        latency_seconds=args.latency_seconds,
        profile_seconds=args.profile_seconds,
        state_pairs=args.state_pairs,
        phases=phases,
        rates=tuple(int(r) for r in args.rates.split(",") if r.strip()),
        flink_jar=find_flink_jar(),
        name=args.name,
        keep_run_dir=args.keep,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    bench = Bench(options)
    try:
        results = asyncio.run(bench.run())
    finally:
        bench.cleanup()
    # A profile-only run (BENCH_PHASES=profile) leaves the results of the last full run alone.
    full = bool(set(options.phases) - {"profile"})
    written = report.write(results, options.results_dir) if full else []
    if bench.profile_text:
        path = options.results_dir / f"profile-{options.name}.txt"
        path.write_text(bench.profile_text)
        written.append(path)
    print()
    print(report.markdown(results) if full else bench.profile_text)
    for path in written:
        log(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
