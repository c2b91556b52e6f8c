"""Command line of the transaction generator: `python -m generator` / `fraud-generator`.

Turns flags (and the Kafka environment variables: bootstrap, topic, security) into a
`GeneratorConfig` plus transport options, runs the send loop of `generator.runner`, and turns
every expected failure into one line on stderr: exit 2 for a bad setting, an unreachable broker
or a refused login, 130 for a forced interrupt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from generator.config import DEFAULT_START_MS, GeneratorConfig
from generator.errors import BrokerError, ConfigError
from generator.formats import LAYOUTS, format_rfc3339, parse_rfc3339
from generator.progress import ProgressDisplay, summary_line
from generator.runner import RunStats, run
from generator.sink import KafkaSink, Sink, StdoutSink
from generator.stream import generate
from generator.truth import GroundTruth, write_ground_truth
from kafka_security import KafkaSecurity
from kafka_security.arguments import add_security_arguments, security_from_args

DEFAULT_BOOTSTRAP = "localhost:9092"
DEFAULT_TOPIC = "transactions"
DEFAULT_RATE = 100.0
EXIT_OK = 0
STOP_SECONDS = 10.0  # closing the producer after a failure or a second Ctrl-C
EXIT_FAILED = 2
EXIT_INTERRUPTED = 130

_DOLLARS = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")


@dataclass(frozen=True)
class RunOptions:
    """How to deliver the records: everything of a run that is not in `GeneratorConfig`."""

    bootstrap: str
    security: KafkaSecurity
    topic: str
    rate: float
    to_stdout: bool
    ground_truth: Path | None
    progress: bool
    wall_seconds: float | None  # a wall-clock limit the config cannot express by itself
    verbose: bool


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The argument parser; `env` supplies the defaults of flags that have an env var."""
    parser = argparse.ArgumentParser(
        prog="fraud-generator",
        description=(
            "Generate transactions 'TIMESTAMP;SENDER;RECEIVER;AMOUNT' into Kafka, with optional"
            " injected structuring scenarios, malformed and out-of-order records."
        ),
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--bootstrap",
        default=env.get("KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP),
        help=f"Kafka bootstrap host:port[,...] [env: KAFKA_BOOTSTRAP, default {DEFAULT_BOOTSTRAP}]",
    )
    out.add_argument(
        "--topic",
        default=env.get("TRANSACTIONS_TOPIC", DEFAULT_TOPIC),
        help=f"topic to write to; it must exist [env: TRANSACTIONS_TOPIC, default {DEFAULT_TOPIC}]",
    )
    out.add_argument("--stdout", action="store_true", help="write lines to stdout instead of Kafka")
    out.add_argument(
        "--unkeyed",
        action="store_true",
        help="send records without a key, as the original Go generator did",
    )
    out.add_argument(
        "--ground-truth",
        type=Path,
        metavar="FILE",
        help="write the injected scenarios and malformed records as JSON Lines",
    )
    out.add_argument("--no-progress", action="store_true", help="no progress display")
    out.add_argument("-v", "--verbose", action="store_true", help="show Kafka client logs")
    add_security_arguments(
        parser.add_argument_group("Kafka security (TLS, client certificate, SASL login)")
    )

    amount = parser.add_argument_group("how much and how fast")
    amount.add_argument(
        "--rate",
        type=_non_negative_float,
        default=DEFAULT_RATE,
        help="records per second; 0 = as fast as possible (default %(default)s)",
    )
    amount.add_argument("--count", type=_non_negative_int, help="stop after this many records")
    amount.add_argument(
        "--duration",
        type=_positive_float,
        metavar="SECONDS",
        help=(
            "stop after this many wall-clock seconds (with --clock simulated and a --rate:"
            " after rate x SECONDS records)"
        ),
    )

    data = parser.add_argument_group("what is generated")
    data.add_argument(
        "--accounts", type=int, default=100, help="size of the account pool (default %(default)s)"
    )
    data.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed; same seed, same records (default %(default)s)",
    )
    data.add_argument(
        "--layout", choices=LAYOUTS, default="rfc850", help="timestamp layout (default %(default)s)"
    )
    data.add_argument(
        "--whole-dollars", action="store_true", help="amounts without cents (e.g. 7810)"
    )
    data.add_argument(
        "--max-amount",
        type=_dollars_to_cents,
        default="5000",
        metavar="DOLLARS",
        help="largest normal transfer (default %(default)s)",
    )

    clock = parser.add_argument_group("event time")
    clock.add_argument(
        "--clock",
        choices=("real", "simulated"),
        default="simulated",
        help=(
            "real: event time = wall clock at send; simulated: from --start by random gaps"
            " (default %(default)s)"
        ),
    )
    clock.add_argument(
        "--start",
        type=_rfc3339,
        default=format_rfc3339(DEFAULT_START_MS),
        metavar="RFC3339",
        help="start of the simulated clock (default %(default)s)",
    )
    clock.add_argument(
        "--mean-gap-ms",
        type=int,
        default=1000,
        help="simulated clock: mean event-time gap between transactions (default %(default)s)",
    )

    inject = parser.add_argument_group("injected cases")
    how_often = inject.add_mutually_exclusive_group()
    how_often.add_argument(
        "--scenarios",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="structuring scenarios spread over a bounded run (every third is a near miss)",
    )
    how_often.add_argument(
        "--scenarios-every",
        type=_positive_float,
        metavar="SECONDS",
        help="one scenario per SECONDS of event time",
    )
    inject.add_argument(
        "--no-near-misses",
        action="store_true",
        help="only structuring scenarios, no just-under-$10,000 ones",
    )
    inject.add_argument(
        "--malformed", type=_fraction, default=0.0, metavar="F", help="fraction of broken records"
    )
    inject.add_argument(
        "--out-of-order",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="fraction of records stamped behind the clock",
    )
    inject.add_argument(
        "--out-of-order-max-ms",
        type=int,
        default=60_000,
        metavar="MS",
        help="how far behind the clock an out-of-order record may be (default %(default)s)",
    )
    return parser


def parse_args(
    argv: Sequence[str] | None, env: Mapping[str, str]
) -> tuple[GeneratorConfig, RunOptions]:
    """Flags to (config, options); a bad or contradictory flag exits through argparse (2)."""
    parser = build_parser(env)
    args = parser.parse_args(argv)
    security = security_from_args(parser, args, env)
    count: int | None = args.count
    duration: float | None = None
    wall_seconds: float | None = None
    if args.duration is not None:
        if args.clock == "real":
            duration = args.duration  # event time is wall time: the stream ends by itself
        elif args.rate > 0:
            # A paced simulated run: so many seconds at this rate is a record count.
            paced = round(args.duration * args.rate)
            count = paced if count is None else min(count, paced)
        else:
            wall_seconds = args.duration
    if args.scenarios and count is None and duration is None:
        parser.error(
            "--scenarios N needs a run of known length: --count, or --duration with --rate > 0"
            " or --clock real; or use --scenarios-every"
        )
    try:
        cfg = GeneratorConfig(
            count=count,
            duration=duration,
            accounts=args.accounts,
            seed=args.seed,
            layout=args.layout,
            clock=args.clock,
            start_ms=args.start,
            mean_gap_ms=args.mean_gap_ms,
            max_amount_cents=args.max_amount,
            scenarios=args.scenarios,
            scenarios_every=args.scenarios_every,
            near_misses=not args.no_near_misses,
            malformed=args.malformed,
            out_of_order=args.out_of_order,
            out_of_order_max_ms=args.out_of_order_max_ms,
            keyed=not args.unkeyed,
            cents=not args.whole_dollars,
        )
    except ConfigError as exc:
        parser.error(str(exc))
    options = RunOptions(
        bootstrap=args.bootstrap,
        security=security,
        topic=args.topic,
        rate=args.rate,
        to_stdout=args.stdout,
        ground_truth=args.ground_truth,
        progress=not args.no_progress and sys.stderr.isatty(),
        wall_seconds=wall_seconds,
        verbose=args.verbose,
    )
    return cfg, options


async def run_generator(cfg: GeneratorConfig, options: RunOptions) -> int:
    """Run one generator session to the end; returns the process exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()

    def on_signal() -> None:
        # First Ctrl-C / SIGTERM: stop and flush. A second one: give up on the flush.
        if stop.is_set() and main_task is not None:
            main_task.cancel()
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)

    sink: Sink = (
        StdoutSink()
        if options.to_stdout
        else KafkaSink(
            options.bootstrap, options.topic, bulk=options.rate == 0, security=options.security
        )
    )
    truth = GroundTruth() if options.ground_truth is not None else None
    stats = RunStats()
    try:
        await sink.start()
        stats = RunStats()  # the rate counts from the first record, not from connecting
        deadline = None if options.wall_seconds is None else loop.time() + options.wall_seconds
        records = generate(cfg)
        on_record = truth.add if truth is not None else None
        display: AbstractAsyncContextManager[object] = (
            ProgressDisplay(stats, total=cfg.count) if options.progress else nullcontext()
        )
        async with display:
            await run(
                records,
                sink,
                rate=options.rate,
                stop=stop,
                stats=stats,
                deadline=deadline,
                on_record=on_record,
            )
    except BrokerError as exc:
        print(f"generator: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except asyncio.CancelledError:
        print(
            f"generator: interrupted; {sink.acknowledged:,} of {stats.produced:,} records"
            " were acknowledged",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        # Bounded, and deaf to a further Ctrl-C: the person has asked to leave twice already.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(sink.stop(), STOP_SECONDS)
        if truth is not None and options.ground_truth is not None:
            write_ground_truth(options.ground_truth, truth.entries())
    print(summary_line(stats, sink.acknowledged, sink.describe()), file=sys.stderr)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m generator` and the `fraud-generator` console script."""
    cfg, options = parse_args(argv, os.environ)
    # The Kafka client logs each failed connection attempt; the generator reports the outcome
    # in one line instead, unless asked for the detail.
    logging.basicConfig(level=logging.INFO if options.verbose else logging.CRITICAL)
    try:
        return _run_loop(cfg, options)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _run_loop(cfg: GeneratorConfig, options: RunOptions) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency
        return asyncio.run(run_generator(cfg, options))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_generator(cfg, options))


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, got {text}")
    return value


def _dollars_to_cents(text: str) -> int:
    if not _DOLLARS.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected dollars like 9000 or 9000.50, got {text!r}")
    whole, _, fraction = text.partition(".")
    return int(whole) * 100 + int(fraction.ljust(2, "0") or "0")


def _rfc3339(text: str) -> int:
    try:
        return parse_rfc3339(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected RFC 3339 like 2017-07-23T00:00:00Z: {exc}"
        ) from None


if __name__ == "__main__":
    sys.exit(main())
