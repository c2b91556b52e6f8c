"""``fraud-verify`` / ``python -m viewer.verify``: score the ``fraud`` topic against ground truth.

Reads the generator's ground-truth file (``--ground-truth FILE`` of ``fraud-generator``) and the
alert topic from the beginning up to where it ended when the read began, matches scenarios and
cases (``viewer.scoring``), looks up the Kafka timestamps of the transactions that crossed the
threshold, and prints recall, precision and latency per scenario type (``--json`` for programs).
Progress goes to stderr on a terminal. Exit code 0 when every structuring scenario that some
window holds whole was detected and no near miss was, 1 otherwise, 2 when it cannot check.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kafka_security import PLAINTEXT, KafkaSecurity
from kafka_security.arguments import security_from_args
from viewer.alerts import parse_record
from viewer.cli import DEFAULT_BOOTSTRAP, DEFAULT_TOPIC, add_kafka_arguments, topic_name
from viewer.errors import BadRecord, ViewerError
from viewer.escaping import printable, printable_json
from viewer.follow import Warn, fetch_timestamps, read_to_end
from viewer.render import format_money, format_pair, format_window, shown_id, wire_time
from viewer.scoring import (
    AlertLog,
    BadGroundTruth,
    Latency,
    ScenarioResult,
    ScenarioType,
    Score,
    TypeScore,
    add_processing_latency,
    read_ground_truth,
    score,
)

PROG = "fraud-verify"
DEFAULT_TRANSACTIONS_TOPIC = "transactions"
DEFAULT_SIZE_S = 600
DEFAULT_SLIDE_S = 120


class ExitCode(IntEnum):
    PASSED = 0
    FAILED = 1  # a structuring scenario that fits a window was missed, or a near miss alerted
    UNAVAILABLE = 2  # usage error, unreadable ground truth, Kafka or topic unavailable
    INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class VerifySettings:
    ground_truth: Path
    bootstrap: str = DEFAULT_BOOTSTRAP
    security: KafkaSecurity = PLAINTEXT
    topic: str = DEFAULT_TOPIC
    transactions_topic: str = DEFAULT_TRANSACTIONS_TOPIC
    size_ms: int = DEFAULT_SIZE_S * 1000
    slide_ms: int = DEFAULT_SLIDE_S * 1000
    json: bool = False
    progress: bool = False


def _milliseconds(value: str) -> int:
    """Seconds as the worker reads them (fractions down to milliseconds), in milliseconds."""
    try:
        milliseconds = round(float(value) * 1000)
    except (ValueError, OverflowError):
        milliseconds = 0
    if not 0 < milliseconds < 10**15:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return milliseconds


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Score the fraud topic against the generator's ground truth: recall, precision and "
            "detection latency per scenario type. Structuring bursts that no aligned sliding "
            "window holds whole are reported apart (missable by design), not as misses."
        ),
        epilog=(
            "Exit codes: 0 every structuring scenario that fits a window was detected and no "
            "near miss alerted, 1 otherwise, 2 usage error, bad ground truth or Kafka/topic "
            "unavailable, 130 interrupted."
        ),
    )
    parser.add_argument(
        "ground_truth",
        metavar="GROUND_TRUTH",
        type=Path,
        help="the JSON Lines file written by fraud-generator --ground-truth FILE",
    )
    # --bootstrap and --topic as the viewer has them: same checks, same environment variables.
    add_kafka_arguments(parser, env)
    parser.add_argument(
        "--transactions-topic",
        type=topic_name,
        default=env.get("TRANSACTIONS_TOPIC") or DEFAULT_TRANSACTIONS_TOPIC,
        help=(
            "input topic, for the Kafka timestamps of the transactions that crossed "
            f"[env: TRANSACTIONS_TOPIC, default: {DEFAULT_TRANSACTIONS_TOPIC}]"
        ),
    )
    parser.add_argument(
        "--window-size",
        type=_milliseconds,
        metavar="S",
        default=env.get("WINDOW_SIZE") or str(DEFAULT_SIZE_S),
        help=f"the worker's window size [env: WINDOW_SIZE, default: {DEFAULT_SIZE_S}]",
    )
    parser.add_argument(
        "--window-slide",
        type=_milliseconds,
        metavar="S",
        default=env.get("WINDOW_SLIDE") or str(DEFAULT_SLIDE_S),
        help=f"the worker's window slide [env: WINDOW_SLIDE, default: {DEFAULT_SLIDE_S}]",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    return parser


def parse_settings(
    argv: Sequence[str] | None, env: Mapping[str, str], stderr_is_terminal: bool
) -> VerifySettings:
    parser = _parser(env)
    args = parser.parse_args(argv)
    security = security_from_args(parser, args, env)
    if args.window_size % args.window_slide:
        parser.error(
            f"--window-size {args.window_size / 1000:g} must be a multiple of "
            f"--window-slide {args.window_slide / 1000:g} (WINDOW_SIZE / WINDOW_SLIDE)"
        )
    return VerifySettings(
        ground_truth=args.ground_truth,
        bootstrap=args.bootstrap,
        security=security,
        topic=args.topic,
        transactions_topic=args.transactions_topic,
        size_ms=args.window_size,
        slide_ms=args.window_slide,
        json=args.json,
        progress=stderr_is_terminal and not args.no_progress,
    )


# --- progress ------------------------------------------------------------------------------


Step = Callable[[int, int], None]


class ReadProgress:
    """A transient progress bar per step on stderr; nothing at all when not on a terminal."""

    def __init__(self, console: Console | None) -> None:
        self._progress = (
            None
            if console is None
            else Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=30),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
        )

    @contextmanager
    def shown(self) -> Iterator[ReadProgress]:
        if self._progress is None:
            yield self
            return
        self._progress.start()
        try:
            yield self
        finally:
            self._progress.stop()

    def step(self, description: str) -> Step | None:
        """A callback for (done, total) of one step, or None when progress is not shown."""
        progress = self._progress
        if progress is None:
            return None
        task = progress.add_task(description, total=None)
        drawn_at = [-1.0]

        def update(done: int, total: int) -> None:
            # Drawn at once at the start and the end, in between by the display's own timer
            # and at most ten times a second from here.
            now = time.monotonic()
            draw = done in (0, total) or now - drawn_at[0] >= 0.1
            progress.update(task, completed=done, total=total, refresh=draw)
            if draw:
                drawn_at[0] = now

        return update


# --- the check -----------------------------------------------------------------------------


async def collect(settings: VerifySettings, warn: Warn, progress: ReadProgress) -> AlertLog:
    """The alert topic read to its end, and the Kafka timestamps of the crossing transactions."""
    log = AlertLog()
    step = progress.step(f"reading {printable(settings.topic)}")
    records = read_to_end(
        settings.bootstrap, settings.topic, security=settings.security, warn=warn, progress=step
    )
    async with aclosing(records):
        async for raw in records:
            if raw.value is None:
                continue
            try:
                log.add(parse_record(raw.value))
            except BadRecord as err:
                warn(f"skipped record {raw.topic}[{raw.partition}]@{raw.offset}: {err}")
    return log


async def look_up_processing(
    settings: VerifySettings, results: list[ScenarioResult], warn: Warn, progress: ReadProgress
) -> None:
    wanted = {
        result.crossing.source
        for result in results
        if result.crossing is not None and result.crossing.source is not None
    }
    if not wanted:
        return
    step = progress.step(f"timestamps in {printable(settings.transactions_topic)}")
    if step is not None:
        step(0, len(wanted))
    try:
        stamps = await fetch_timestamps(
            settings.bootstrap,
            settings.transactions_topic,
            wanted,
            security=settings.security,
            warn=warn,
        )
    except ViewerError as err:
        warn(f"processing latency unknown: {err}")
        return
    if step is not None:
        step(len(wanted), len(wanted))
    for result in results:
        add_processing_latency(result, stamps)


async def verify(
    settings: VerifySettings, warn: Warn, progress: ReadProgress
) -> tuple[Score, int, int]:
    """The score, and the ground truth's malformed and unknown entries (not scored)."""
    try:
        text = settings.ground_truth.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BadGroundTruth(f"cannot read {settings.ground_truth}: {err}") from None
    truth = read_ground_truth(text.splitlines())
    log = await collect(settings, warn, progress)
    result = score(truth, log, size_ms=settings.size_ms, slide_ms=settings.slide_ms)
    every = [r for kind in result.types.values() for r in kind.results]
    await look_up_processing(settings, every, warn, progress)
    return result, truth.malformed, truth.other


# --- output --------------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """``0.84s``, ``42.0s``, ``4m05s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if abs(seconds) < 10:
        return f"{seconds:.2f}s"
    if abs(seconds) < 60:
        return f"{seconds:.1f}s"
    sign = "-" if seconds < 0 else ""
    minutes, rest = divmod(round(abs(seconds)), 60)
    return f"{sign}{minutes}m{rest:02d}s"


def _latency(latency: Latency | None) -> str:
    if latency is None:
        return "-"
    return f"{format_duration(latency.median_s)} / {format_duration(latency.max_s)}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


_COLUMNS = (
    ("type", 12, "<"),
    ("scenarios", 9, ">"),
    ("scored", 6, ">"),
    ("alerted", 7, ">"),
    ("recall", 6, ">"),
    ("crossing after", 17, ">"),
    ("window end after", 17, ">"),
    ("processing", 15, ">"),
)


def _row(cells: Sequence[str]) -> str:
    return "  ".join(
        f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, _COLUMNS, strict=True)
    ).rstrip()


def _scenario_line(result: ScenarioResult) -> str:
    scenario = result.scenario
    outcome = f"detected ({len(result.case_ids)} case)" if result.detected else "not detected"
    return (
        f"  {scenario.type.value} {format_pair(scenario.sender, scenario.receiver)}"
        f"  {format_window(scenario.first_event, scenario.last_event)}"
        f" ({format_duration(scenario.span_s)}) total {format_money(scenario.total)}: {outcome}"
    )


def report_lines(settings: VerifySettings, result: Score, malformed: int, other: int) -> list[str]:
    """The plain report, one string per line."""
    structuring = result.types[ScenarioType.STRUCTURING]
    near_miss = result.types[ScenarioType.NEAR_MISS]
    skipped = f"; {malformed} malformed-record entries not scored" if malformed else ""
    skipped += f"; {other} unknown entries ignored" if other else ""
    lines = [
        f"ground truth {settings.ground_truth}: {structuring.scenarios} structuring and "
        f"{near_miss.scenarios} near-miss scenarios{skipped}",
        f"topic {printable(settings.topic)}: {result.records} records, {result.windows} flagged "
        f"windows in {result.cases} cases (windows of {format_duration(settings.size_ms / 1000)} "
        f"sliding by {format_duration(settings.slide_ms / 1000)})",
        "",
        _row([name for name, _, _ in _COLUMNS]),
    ]
    for kind in (structuring, near_miss):
        lines.append(
            _row(
                [
                    kind.type.value,
                    str(kind.scenarios),
                    str(kind.scored),
                    str(kind.detected),
                    _ratio(kind.recall),
                    _latency(kind.latency("crossing_after_s")),
                    _latency(kind.latency("close_after_s")),
                    _latency(kind.latency("processing_s")),
                ]
            )
        )
    lines += [
        "",
        f"precision {_ratio(result.precision)}: {result.true_cases} of {result.cases} cases match "
        f"a structuring scenario; {len(result.near_miss_cases)} match a near miss, "
        f"{len(result.unexplained_cases)} match no scenario",
        "latency, median / max over the detected scenarios:",
        "  crossing after    event time from a scenario's first transfer to the one that crossed",
        "  window end after  event time from its first transfer to the end of its first flagged",
        "                    window: when a job that reports closed windows only could report it",
        "  processing        wall clock from the crossing transfer's Kafka timestamp to the",
        "                    alert's detected_at",
    ]
    missable = [r for r in structuring.results if r.scenario.complete and not r.scored]
    if missable:
        lines.append(
            f"missable by design ({len(missable)}; longer than what every aligned "
            f"{format_duration(settings.size_ms / 1000)} window holds, not counted in recall; "
            f"{structuring.missable_detected} detected anyway):"
        )
        lines.extend(_scenario_line(r) for r in missable)
    missed = [r for r in structuring.results if r.scored and not r.detected]
    if missed:
        lines.append(f"missed ({len(missed)}):")
        lines.extend(_scenario_line(r) for r in missed)
    alerted = [r for r in near_miss.results if r.detected]
    if alerted:
        lines.append(f"near misses alerted ({len(alerted)}):")
        lines.extend(_scenario_line(r) for r in alerted)
    incomplete = structuring.incomplete + near_miss.incomplete
    if incomplete:
        lines.append(
            f"incomplete scenarios (the run stopped inside them, not scored): {incomplete}"
        )
    for case in result.unexplained_cases[:20]:
        lines.append(
            f"  no scenario: case {shown_id(case.case_id)} "
            f"{format_pair(case.sender, case.receiver)} total {format_money(case.total)}"
        )
    verdict = "PASS" if result.passed else "FAIL"
    lines.append(
        f"{verdict}: {structuring.detected} of {structuring.scored} structuring scenarios "
        f"detected, {near_miss.detected} of {near_miss.scored} near misses alerted"
    )
    return lines


def _type_document(kind: TypeScore) -> dict[str, object]:
    def latency(what: str) -> dict[str, float] | None:
        value = kind.latency(what)
        return None if value is None else {"median": value.median_s, "max": value.max_s}

    return {
        "scenarios": kind.scenarios,
        "scored": kind.scored,
        "alerted": kind.detected,
        "recall": kind.recall,
        "incomplete": kind.incomplete,
        "missable_by_design": kind.missable,
        "missable_alerted": kind.missable_detected,
        "latency_s": {
            "crossing_after": latency("crossing_after_s"),
            "window_end_after": latency("close_after_s"),
            "processing": latency("processing_s"),
        },
    }


def _scenario_document(result: ScenarioResult) -> dict[str, object]:
    scenario = result.scenario
    return {
        "type": scenario.type.value,
        "sender": scenario.sender,
        "receiver": scenario.receiver,
        "first_event": wire_time(scenario.first_event),
        "last_event": wire_time(scenario.last_event),
        "total": str(scenario.total),
        "count": scenario.count,
        "complete": scenario.complete,
        "fits_window": result.fits_window,
        "scored": result.scored,
        "alerted": result.detected,
        "case_ids": result.case_ids,
        "windows": result.windows,
        "crossing_alert_id": None if result.crossing is None else result.crossing.record.alert_id,
        "crossing_after_s": result.crossing_after_s,
        "window_end_after_s": result.close_after_s,
        "processing_s": result.processing_s,
    }


def report_document(
    settings: VerifySettings, result: Score, malformed: int, other: int
) -> dict[str, object]:
    return {
        "ground_truth": str(settings.ground_truth),
        "topic": settings.topic,
        "window_size_s": settings.size_ms / 1000,
        "window_slide_s": settings.slide_ms / 1000,
        "records": result.records,
        "windows": result.windows,
        "cases": result.cases,
        "precision": result.precision,
        "true_cases": result.true_cases,
        "near_miss_cases": [case.case_id for case in result.near_miss_cases],
        "unexplained_cases": [case.case_id for case in result.unexplained_cases],
        "types": {kind.value: _type_document(result.types[kind]) for kind in ScenarioType},
        "scenarios": [
            _scenario_document(r) for kind in result.types.values() for r in kind.results
        ],
        "malformed_entries": malformed,
        "unknown_entries": other,
        "passed": result.passed,
    }


def _warn(message: str) -> None:
    print(f"{PROG}: {printable(message, 500)}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m viewer.verify`` and the ``fraud-verify`` console script."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    settings = parse_settings(argv, os.environ, stderr_is_terminal=sys.stderr.isatty())
    progress = ReadProgress(Console(stderr=True) if settings.progress else None)
    try:
        with progress.shown():
            result, malformed, other = asyncio.run(verify(settings, _warn, progress))
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except ViewerError as err:
        _warn(str(err))
        return int(ExitCode.UNAVAILABLE)
    if settings.json:
        document = report_document(settings, result, malformed, other)
        text = printable_json(orjson.dumps(document).decode())
    else:
        text = "\n".join(report_lines(settings, result, malformed, other))
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # The reader left (`fraud-verify ... | head -3`): keep the exit code, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return int(ExitCode.PASSED if result.passed else ExitCode.FAILED)


if __name__ == "__main__":
    sys.exit(main())
