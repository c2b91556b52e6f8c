"""The viewer loop: raw records in, each change of an alert out, until a stop condition.

Records of the alert topic are parsed and merged by ``alert_id``; records of any other topic
(the dead-letter topic, followed by the live view) are passed on to be counted. Kept apart from
Kafka (``viewer.follow``) so the loop, the stop conditions and the handling of bad records are
tested with records made in memory.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from contextlib import aclosing
from enum import IntEnum

from viewer.alerts import AlertBook, parse_record
from viewer.cli import OutputMode, ViewerSettings
from viewer.errors import BadRecord, ViewerError
from viewer.escaping import printable
from viewer.follow import CaughtUp, Fetched, Warn, follow
from viewer.render import AlertRenderer

PROG = "fraud-viewer"


class ExitCode(IntEnum):
    """What the process tells its caller."""

    OK = 0
    # --max-alerts was given and --timeout ran out first: a script waiting for alerts failed.
    TOO_FEW_ALERTS = 1
    # Usage errors (argparse's own code), broker down, topic missing.
    UNAVAILABLE = 2
    # 128 + SIGINT, what a shell reports for a program stopped with Ctrl-C.
    INTERRUPTED = 130


def warn_on_stderr(message: str) -> None:
    """One escaped line on stderr, found at call time so a live view's redirection applies."""
    print(f"{PROG}: {printable(message, 500)}", file=sys.stderr, flush=True)


async def show_alerts(
    records: AsyncIterable[Fetched],
    renderer: AlertRenderer,
    warn: Warn,
    *,
    max_alerts: int | None = None,
    book: AlertBook | None = None,
    alert_topic: str | None = None,
) -> AlertBook:
    """Parse, merge and show records until they end or ``max_alerts`` distinct alerts shown.

    With ``alert_topic`` given, records of other topics are dead letters for the renderer.
    """
    book = AlertBook() if book is None else book
    async for raw in records:
        if isinstance(raw, CaughtUp):
            renderer.caught_up()
            continue
        if alert_topic is not None and raw.topic != alert_topic:
            renderer.dead_letter(raw.value)
            continue
        if raw.value is None:
            # A tombstone: someone compacting the topic deleted an alert; nothing to show.
            continue
        try:
            record = parse_record(raw.value)
        except BadRecord as err:
            warn(f"skipped record {raw.topic}[{raw.partition}]@{raw.offset}: {err}")
            continue
        alert = book.apply(record)
        if alert is not None:
            renderer.show(alert)
        if max_alerts is not None and book.distinct >= max_alerts:
            break
    return book


RecordSource = Callable[[ViewerSettings, Warn], AsyncGenerator[Fetched, None]]


def kafka_records(settings: ViewerSettings, warn: Warn) -> AsyncGenerator[Fetched, None]:
    """The records of the alert topic (and for the live view's footer, the dead letters)."""
    also = [settings.dlq_topic] if settings.output is OutputMode.LIVE else []
    return follow(
        settings.bootstrap,
        settings.topic,
        security=settings.security,
        from_beginning=settings.from_beginning,
        warn=warn,
        also=also,
    )


async def run(
    settings: ViewerSettings,
    renderer: AlertRenderer,
    warn: Warn = warn_on_stderr,
    source: RecordSource = kafka_records,
) -> ExitCode:
    """Follow the topic with the settings' stop conditions; errors become an exit code."""
    book = AlertBook()
    deadline = asyncio.timeout(settings.timeout)
    try:
        # aclosing: stopping early (max-alerts, timeout, Ctrl-C) must still stop the consumer.
        async with deadline, aclosing(source(settings, warn)) as records:
            await show_alerts(
                records,
                renderer,
                warn,
                max_alerts=settings.max_alerts,
                book=book,
                alert_topic=settings.topic,
            )
    except TimeoutError:
        if not deadline.expired():
            # Not our deadline: a network timeout that escaped the Kafka client.
            warn(f"Kafka at {settings.bootstrap} timed out")
            return ExitCode.UNAVAILABLE
        if settings.max_alerts is not None and book.distinct < settings.max_alerts:
            warn(
                f"timed out after {settings.timeout:g} s with {book.distinct} of "
                f"{settings.max_alerts} alerts"
            )
            return ExitCode.TOO_FEW_ALERTS
    except ViewerError as err:
        warn(str(err))
        return ExitCode.UNAVAILABLE
    return ExitCode.OK
