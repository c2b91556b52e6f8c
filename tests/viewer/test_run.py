"""The viewer loop and its stop conditions (viewer.run), with records made in memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable

import pytest

from tests.viewer.records import alert_record, encoded
from viewer.alerts import Alert, AlertStatus
from viewer.cli import ViewerSettings
from viewer.errors import BrokerUnavailable, TopicNotFound
from viewer.follow import CAUGHT_UP, Fetched, RawRecord, Warn
from viewer.run import ExitCode, run, show_alerts, warn_on_stderr


class Collected:
    """A renderer that keeps what it was shown."""

    def __init__(self) -> None:
        self.shown: list[Alert] = []
        self.dead: list[bytes | None] = []
        self.caught_up_after: int | None = None
        self.closed = False

    def show(self, alert: Alert) -> None:
        self.shown.append(alert)

    def dead_letter(self, value: bytes | None) -> None:
        self.dead.append(value)

    def caught_up(self) -> None:
        self.caught_up_after = len(self.shown)

    def close(self) -> None:
        self.closed = True


class Warnings(list[str]):
    def __call__(self, message: str) -> None:
        self.append(message)


def raw(values: Iterable[bytes | None]) -> list[RawRecord]:
    return [RawRecord("fraud", 3, offset, value) for offset, value in enumerate(values)]


async def stream(records: Iterable[Fetched]) -> AsyncGenerator[Fetched, None]:
    for record in records:
        yield record


class Source:
    """A record source for :func:`run`: given records, then (optionally) waits forever."""

    def __init__(self, records: Iterable[RawRecord], *, then_wait: bool = True) -> None:
        self.records = list(records)
        self.then_wait = then_wait
        self.closed = False

    def __call__(self, settings: ViewerSettings, warn: Warn) -> AsyncGenerator[RawRecord, None]:
        return self._generate()

    async def _generate(self) -> AsyncGenerator[RawRecord, None]:
        try:
            for record in self.records:
                yield record
            if self.then_wait:
                await asyncio.Event().wait()
        finally:
            self.closed = True


CROSSED = encoded(alert_record("threshold_crossed"))
CLOSED = encoded(alert_record("window_closed"))


async def test_duplicates_and_bad_records_show_each_change_once_and_warn_once_each() -> None:
    renderer, warnings = Collected(), Warnings()
    values = [CROSSED, b"{oops", CROSSED, None, CLOSED, b'{"schema": 1}', CLOSED]

    book = await show_alerts(stream(raw(values)), renderer, warnings)

    assert [alert.status for alert in renderer.shown] == [
        AlertStatus.CROSSED,
        AlertStatus.CLOSED,
    ]
    # One line per bad record, saying where it is; the tombstone (None) is not an error.
    assert len(warnings) == 2
    assert warnings[0].startswith("skipped record fraud[3]@1: not valid JSON")
    assert warnings[1] == "skipped record fraud[3]@5: missing field 'kind'"
    assert book.distinct == 1


async def test_records_of_the_dead_letter_topic_go_to_the_renderer_not_the_alerts() -> None:
    renderer, warnings = Collected(), Warnings()
    dead = b'{"schema": 1, "reason": "late"}'
    records = [
        RawRecord("fraud", 0, 0, CROSSED),
        RawRecord("transactions-dlq", 5, 0, dead),
        RawRecord("transactions-dlq", 5, 1, b"not json"),  # not an alert: no warning either
        RawRecord("fraud", 0, 1, CLOSED),
    ]

    await show_alerts(stream(records), renderer, warnings, alert_topic="fraud")

    assert [alert.status for alert in renderer.shown] == [
        AlertStatus.CROSSED,
        AlertStatus.CLOSED,
    ]
    assert renderer.dead == [dead, b"not json"]
    assert warnings == []


async def test_the_renderer_hears_when_the_backlog_has_been_read() -> None:
    renderer = Collected()
    records: list[Fetched] = [*raw([CROSSED, CLOSED]), CAUGHT_UP, *raw([CROSSED])]

    await show_alerts(stream(records), renderer, Warnings())

    assert renderer.caught_up_after == 2


async def test_max_alerts_stops_at_the_first_record_of_the_nth_alert() -> None:
    renderer = Collected()
    values = [encoded(alert_record(alert_id=f"a:b:{number}")) for number in range(5)]

    book = await show_alerts(stream(raw(values)), renderer, Warnings(), max_alerts=3)

    assert [alert.alert_id for alert in renderer.shown] == ["a:b:0", "a:b:1", "a:b:2"]
    assert book.distinct == 3


async def test_max_alerts_counts_distinct_alerts_not_changes() -> None:
    renderer = Collected()
    other = encoded(alert_record(alert_id="a:b:1"))

    await show_alerts(stream(raw([CROSSED, CLOSED, other])), renderer, Warnings(), max_alerts=2)

    assert len(renderer.shown) == 3


async def test_run_stops_after_max_alerts_and_closes_the_source() -> None:
    source, renderer = Source(raw([CROSSED, CLOSED])), Collected()

    code = await run(ViewerSettings(max_alerts=1), renderer, Warnings(), source)

    assert code is ExitCode.OK
    assert len(renderer.shown) == 1
    assert source.closed


async def test_run_with_a_timeout_and_no_max_alerts_ends_normally() -> None:
    source, renderer = Source(raw([CROSSED])), Collected()

    code = await run(ViewerSettings(timeout=0.2), renderer, Warnings(), source)

    assert code is ExitCode.OK
    assert len(renderer.shown) == 1
    assert source.closed


async def test_run_that_times_out_before_max_alerts_fails_and_says_so() -> None:
    warnings = Warnings()

    code = await run(
        ViewerSettings(timeout=0.2, max_alerts=3), Collected(), warnings, Source(raw([CROSSED]))
    )

    assert code is ExitCode.TOO_FEW_ALERTS
    assert warnings == ["timed out after 0.2 s with 1 of 3 alerts"]


@pytest.mark.parametrize(
    "error",
    [
        BrokerUnavailable("cannot reach Kafka at h:1: is the broker running?"),
        TopicNotFound("topic 'fraud' does not exist on Kafka at h:1"),
    ],
)
async def test_an_unavailable_broker_or_topic_is_one_line_and_exit_code_2(
    error: Exception,
) -> None:
    async def failing(settings: ViewerSettings, warn: Warn) -> AsyncGenerator[RawRecord, None]:
        raise error
        yield  # pragma: no cover  (makes this an async generator)

    warnings = Warnings()

    code = await run(ViewerSettings(), Collected(), warnings, failing)

    assert code is ExitCode.UNAVAILABLE
    assert warnings == [str(error)]


async def test_a_network_timeout_is_not_mistaken_for_the_deadline() -> None:
    async def timing_out(settings: ViewerSettings, warn: Warn) -> AsyncGenerator[RawRecord, None]:
        raise TimeoutError
        yield  # pragma: no cover

    warnings = Warnings()

    code = await run(ViewerSettings(timeout=60), Collected(), warnings, timing_out)

    assert code is ExitCode.UNAVAILABLE
    assert warnings == ["Kafka at localhost:9092 timed out"]


def test_warnings_on_stderr_are_one_escaped_line(capsys: pytest.CaptureFixture[str]) -> None:
    warn_on_stderr("skipped record fraud[0]@1: unknown kind '\x1b[2J\nboom'")

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "fraud-viewer: skipped record fraud[0]@1: unknown kind '\\x1b[2J\\nboom'\n"
    )
