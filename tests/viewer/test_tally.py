"""The live view's footer counts (viewer.tally): alert rate and dead letters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from tests.viewer.records import alert_record, encoded
from viewer.alerts import Alert, AlertBook, parse_record
from viewer.tally import Tally

NOW = datetime(2026, 11, 28, 13, 0, 0, tzinfo=UTC).timestamp()


def stamp(seconds_before_now: float) -> str:
    moment = datetime.fromtimestamp(NOW - seconds_before_now, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def changes(*records: dict[str, Any]) -> list[Alert]:
    book = AlertBook()
    found = [book.apply(parse_record(encoded(record))) for record in records]
    return [alert for alert in found if alert is not None]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_the_rate_counts_windows_first_detected_in_the_last_minute() -> None:
    clock = Clock()
    tally = Tally(now=clock)
    for alert in changes(
        alert_record("threshold_crossed", alert_id="a:b:1", detected_at=stamp(5)),
        alert_record("window_closed", alert_id="a:b:1", detected_at=stamp(1)),  # same window
        alert_record("window_closed", alert_id="a:b:2", detected_at=stamp(30)),  # closed first
        alert_record("threshold_crossed", alert_id="a:b:3", detected_at=stamp(61)),  # too old
        alert_record("threshold_crossed", alert_id="a:b:4", detected_at=stamp(3600)),  # backlog
    ):
        tally.alert(alert)

    assert tally.alerts_per_minute() == 2
    clock.now += 31  # a:b:2 (30 s old) is now older than a minute
    assert tally.alerts_per_minute() == 1
    clock.now += 60
    assert tally.alerts_per_minute() == 0


def dead_letter(reason: str, offset: int, **extra: object) -> bytes:
    document = {
        "schema": 1,
        "reason": reason,
        "topic": "transactions",
        "partition": 3,
        "offset": offset,
        **extra,
    }
    return orjson.dumps(document)


def test_dead_letters_are_counted_once_per_input_record_and_late_ones_apart() -> None:
    tally = Tally()
    for value in [
        dead_letter("late", 1),
        dead_letter("late", 2),
        dead_letter("late", 2),  # written twice by a worker that retried: one input record
        dead_letter("bad_amount", 3),
        b"not json",  # still a record on the dead-letter topic
        None,  # a tombstone is no dead letter
    ]:
        tally.dead_letter(value)

    assert (tally.dead_letters, tally.late) == (4, 2)
    assert tally.reasons["bad_amount"] == 1
    assert tally.reasons["other"] == 1


def test_the_dedup_memory_is_bounded() -> None:
    tally = Tally(remember=2)
    for offset in (1, 2, 3, 1):  # offset 1 was forgotten when 3 came
        tally.dead_letter(dead_letter("late", offset))

    assert tally.dead_letters == 4
