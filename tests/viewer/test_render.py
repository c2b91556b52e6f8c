"""Per-window plain and JSON lines (viewer.render), and escaping (viewer.escaping).

Cases are tested in test_cases.py, the live view in test_live.py.
"""

from __future__ import annotations

import io
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from tests.viewer.records import ALERT_ID, alert_record, encoded
from viewer.alerts import Alert, AlertBook, parse_record
from viewer.escaping import printable, printable_json
from viewer.render import (
    WindowRenderer,
    format_money,
    format_window,
    json_line,
    plain_lines,
)

HOSTILE = "a\x1b[31m\x07\x00\x7f\x9b\u202e\u2028\n\rz"
"""Escape sequence, bell, NUL, DEL, C1 CSI, bidi override, line separator, newline, CR."""


def alerts(*records: dict[str, object]) -> list[Alert]:
    """The changes an AlertBook reports for ``records``, in order."""
    book = AlertBook()
    changes = [book.apply(parse_record(encoded(record))) for record in records]
    return [alert for alert in changes if alert is not None]


def crossed_then_closed(**overrides: object) -> list[Alert]:
    return alerts(
        alert_record("threshold_crossed", **overrides), alert_record("window_closed", **overrides)
    )


def assert_no_raw_controls(text: str) -> None:
    unsafe = [char for char in text if unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"}]
    assert unsafe == [], f"raw control characters {unsafe!r} in {text!r}"


# --- plain -----------------------------------------------------------------------------------


def test_plain_lines_of_crossed_then_closed() -> None:
    crossed, closed = crossed_then_closed()

    assert plain_lines(crossed) == [
        "2026-11-28T13:00:00Z CROSSED 66 -> 26 window 2017-07-23 01:00:00–01:10:00"
        " total $10,500.00 (6 tx) id=66:26:1500771600000"
    ]
    assert plain_lines(closed) == [
        "2026-11-28T13:05:00Z CLOSED 66 -> 26 window 2017-07-23 01:00:00–01:10:00"
        " total $12,000.50 (7 tx) id=66:26:1500771600000"
    ]


def test_plain_evidence_is_one_indented_line_per_transaction() -> None:
    (closed,) = alerts(alert_record("window_closed", truncated=True))

    assert plain_lines(closed, evidence=True)[1:] == [
        "    2017-07-23 01:01:02.000       $1,500.00  partition 3 offset 1234",
        "    2017-07-23 01:06:47.000       $7,810.00  partition 3 offset 1240",
        "    … 2 of 7 transactions listed (evidence capped)",
    ]


def test_plain_evidence_without_location_has_no_partition() -> None:
    evidence = [{"event_time": "2017-07-23T01:01:02.5Z", "amount": "0.5"}]
    (crossed,) = alerts(alert_record(transactions=evidence))

    assert plain_lines(crossed, evidence=True)[1] == ("    2017-07-23 01:01:02.500           $0.50")


def test_a_window_across_midnight_shows_both_dates() -> None:
    start = datetime(2017, 7, 23, 23, 56, tzinfo=UTC)
    end = datetime(2017, 7, 24, 0, 6, tzinfo=UTC)

    assert format_window(start, end) == "2017-07-23 23:56:00–2017-07-24 00:06:00"


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("12000.5", "$12,000.50"),
        ("10000.01", "$10,000.01"),
        ("7810", "$7,810.00"),
        ("0.05", "$0.05"),
        ("1234567890.99", "$1,234,567,890.99"),
        ("-5", "-$5.00"),
    ],
)
def test_money_is_dollars_with_separators_and_cents(amount: str, shown: str) -> None:
    assert format_money(Decimal(amount)) == shown


def test_plain_output_escapes_control_characters_from_the_record() -> None:
    evil_id = f"{HOSTILE}:26:1500771600000"
    (crossed,) = alerts(alert_record(sender=HOSTILE, receiver=HOSTILE, alert_id=evil_id))

    lines = plain_lines(crossed, evidence=True)

    for line in lines:
        assert_no_raw_controls(line)
    assert len(lines) == 3  # a newline in a field did not split the alert's line
    assert "a\\x1b[31m\\x07\\x00\\x7f\\x9b\\u202e\\u2028\\n\\rz -> " in lines[0]


def test_an_oversized_field_is_cut_with_a_marker() -> None:
    (crossed,) = alerts(alert_record(sender="x" * 100_000))

    line = plain_lines(crossed)[0]

    assert len(line) < 400
    assert "…(+99920 chars)" in line


def test_a_settled_backlog_shows_each_window_once_in_its_latest_state() -> None:
    stream = io.StringIO()
    renderer = WindowRenderer.plain(stream, backlog=True)
    later = alert_record(
        alert_id="7:8:1500771600000", sender="7", receiver="8", detected_at="2026-11-28T14:00Z"
    )
    changes = alerts(later, alert_record("threshold_crossed"), alert_record("window_closed"))

    for alert in changes:
        renderer.show(alert)
    assert stream.getvalue() == ""  # nothing while the backlog is read
    renderer.caught_up()
    renderer.show(alerts(alert_record(alert_id="1:2:0", sender="1", receiver="2"))[0])
    renderer.close()

    shown = [(line.split()[1], line.split("id=")[1]) for line in stream.getvalue().splitlines()]
    assert shown == [
        ("CLOSED", ALERT_ID),  # first detected (crossed) at 13:00, now closed
        ("CROSSED", "7:8:1500771600000"),
        ("CROSSED", "1:2:0"),  # after the backlog: every change, as it comes
    ]


def test_stopping_inside_the_backlog_still_shows_it() -> None:
    stream = io.StringIO()
    renderer = WindowRenderer.json(stream, backlog=True)

    for alert in crossed_then_closed():
        renderer.show(alert)
    renderer.close()

    assert [orjson.loads(line)["status"] for line in stream.getvalue().splitlines()] == ["closed"]


def test_plain_renderer_writes_each_change() -> None:
    stream = io.StringIO()
    renderer = WindowRenderer.plain(stream, evidence=False)

    for alert in crossed_then_closed():
        renderer.show(alert)
    renderer.close()

    assert [line.split()[1] for line in stream.getvalue().splitlines()] == ["CROSSED", "CLOSED"]


# --- json ------------------------------------------------------------------------------------


def test_json_line_is_the_merged_alert() -> None:
    _, closed = crossed_then_closed()

    document = orjson.loads(json_line(closed))

    assert document == {
        "alert_id": ALERT_ID,
        "status": "closed",
        "sender": "66",
        "receiver": "26",
        "window_start": "2017-07-23T01:00:00.000Z",
        "window_end": "2017-07-23T01:10:00.000Z",
        "total": "12000.50",
        "threshold": "10000.00",
        "count": 7,
        "first_event": "2017-07-23T01:01:02.000Z",
        "last_event": "2017-07-23T01:08:00.000Z",
        "crossed_at": "2026-11-28T13:00:00.123Z",
        "closed_at": "2026-11-28T13:05:00.000Z",
        "transactions": [
            {
                "event_time": "2017-07-23T01:01:02.000Z",
                "amount": "1500.00",
                "partition": 3,
                "offset": 1234,
            },
            {
                "event_time": "2017-07-23T01:06:47.000Z",
                "amount": "7810",
                "partition": 3,
                "offset": 1240,
            },
        ],
        "truncated": False,
    }


def test_json_renderer_writes_one_object_per_line_per_change() -> None:
    stream = io.StringIO()
    renderer = WindowRenderer.json(stream)

    for alert in crossed_then_closed():
        renderer.show(alert)

    lines = stream.getvalue().splitlines()
    assert [orjson.loads(line)["status"] for line in lines] == ["crossed", "closed"]
    assert orjson.loads(lines[0])["closed_at"] is None


def test_json_escapes_control_characters_yet_keeps_the_value() -> None:
    (crossed,) = alerts(alert_record(sender=HOSTILE, receiver="é😀"))

    line = json_line(crossed)

    assert_no_raw_controls(line)
    assert "\n" not in line
    document = orjson.loads(line)
    assert document["sender"] == HOSTILE  # lossless: a program downstream sees the real value
    assert document["receiver"] == "é😀"  # printable non-ASCII stays as it is


def test_printable_json_writes_astral_format_characters_as_a_surrogate_pair() -> None:
    tag = "\U000e0001"  # LANGUAGE TAG, an invisible format character outside the BMP
    line = printable_json(orjson.dumps({"v": tag}).decode())

    assert line == '{"v":"\\udb40\\udc01"}'
    assert orjson.loads(line) == {"v": tag}


# --- escaping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("66", "66"),
        ("acct_1.a-B", "acct_1.a-B"),
        ("é😀", "é😀"),
        ("\x1b[2J", "\\x1b[2J"),
        ("a\nb", "a\\nb"),
        ("\u202egnp.exe", "\\u202egnp.exe"),
        ("\U000e0001", "\\U000e0001"),
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_printable_bounds_its_output() -> None:
    assert printable("\x00" * 1000, limit=10) == "\\x00" * 10 + "…(+990 chars)"
