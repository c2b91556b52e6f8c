"""Parsing alert records and merging the two kinds by alert_id (viewer.alerts)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.viewer.records import ALERT_ID, alert_record, encoded
from viewer.alerts import AlertBook, AlertKind, AlertRecord, AlertStatus, parse_record
from viewer.errors import BadRecord

CROSSED = alert_record("threshold_crossed")
CLOSED = alert_record("window_closed")


def parsed(kind: str = "threshold_crossed", **overrides: object) -> AlertRecord:
    return parse_record(encoded(alert_record(kind, **overrides)))


# --- parsing ---------------------------------------------------------------------------------


def test_a_valid_record_is_typed_money_as_decimal_times_as_utc() -> None:
    record = parse_record(encoded(CLOSED))

    assert record.alert_id == ALERT_ID
    assert record.kind is AlertKind.WINDOW_CLOSED
    assert (record.sender, record.receiver) == ("66", "26")
    assert record.window_start == datetime(2017, 7, 23, 1, 0, tzinfo=UTC)
    assert record.window_end == datetime(2017, 7, 23, 1, 10, tzinfo=UTC)
    assert record.total == Decimal("12000.50")
    assert record.threshold == Decimal("10000.00")
    assert record.count == 7
    assert record.detected_at == datetime(2026, 11, 28, 13, 5, tzinfo=UTC)
    assert [(item.amount, item.partition, item.offset) for item in record.transactions] == [
        (Decimal("1500.00"), 3, 1234),
        (Decimal("7810"), 3, 1240),
    ]
    assert record.transactions[0].event_time == datetime(2017, 7, 23, 1, 1, 2, tzinfo=UTC)


def test_unknown_fields_are_ignored() -> None:
    assert parsed(severity="high", extra={"nested": [1, 2]}) == parsed()


def test_times_with_an_offset_are_normalised_to_utc() -> None:
    record = parsed(detected_at="2026-11-28T14:00:00.123+01:00")

    assert record.detected_at == datetime(2026, 11, 28, 13, 0, 0, 123000, tzinfo=UTC)
    assert record.detected_at.utcoffset() is not None


def test_optional_fields_may_be_missing() -> None:
    record = parsed(
        threshold=None, first_event=None, last_event=None, transactions=None, truncated=None
    )

    assert record.threshold is None
    assert (record.first_event, record.last_event) == (None, None)
    assert record.transactions == ()
    assert record.truncated is False


def test_evidence_without_partition_and_offset_is_accepted() -> None:
    record = parsed(transactions=[{"event_time": "2017-07-23T01:01:02Z", "amount": "1"}])

    assert (record.transactions[0].partition, record.transactions[0].offset) == (None, None)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not a JSON object but array"),
        (b'"text"', "not a JSON object but string"),
        (b"null", "not a JSON object but null"),
    ],
)
def test_a_value_that_is_not_a_json_object_is_a_bad_record(value: bytes, reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        parse_record(value)


@pytest.mark.parametrize(
    "field",
    [
        "alert_id",
        "kind",
        "sender",
        "receiver",
        "window_start",
        "window_end",
        "total",
        "count",
        "detected_at",
    ],
)
def test_a_record_lacking_a_required_field_is_a_bad_record_naming_it(field: str) -> None:
    record = alert_record()
    del record[field]

    with pytest.raises(BadRecord, match=field):
        parse_record(encoded(record))


def test_a_record_without_schema_is_a_bad_record() -> None:
    with pytest.raises(BadRecord, match="unsupported schema None"):
        parsed(schema=None)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"schema": 2}, "unsupported schema 2"),
        ({"schema": True}, "unsupported schema True"),
        ({"kind": "window_opened"}, "unknown kind 'window_opened'"),
        ({"alert_id": ""}, "'alert_id' must be a non-empty string"),
        ({"sender": 66}, "'sender' must be a non-empty string"),
        # A float has already lost the cents: money must arrive as a decimal string.
        ({"total": 12000.5}, "'total' must be a decimal string"),
        ({"total": "12,000.50"}, "'total' must be a decimal string"),
        ({"total": "NaN"}, "'total' must be a decimal string"),
        ({"total": "Infinity"}, "'total' must be a decimal string"),
        ({"threshold": [1]}, "'threshold' must be a decimal string"),
        ({"count": "7"}, "'count' must be a non-negative integer"),
        ({"count": -1}, "'count' must be a non-negative integer"),
        ({"count": True}, "'count' must be a non-negative integer"),
        ({"window_start": "2017-07-23 01:00:00"}, "'window_start' must be an RFC 3339 time"),
        ({"detected_at": "yesterday"}, "'detected_at' must be an RFC 3339 time"),
        ({"detected_at": 1500771600000}, "'detected_at' must be an RFC 3339 time"),
        ({"truncated": "no"}, "'truncated' must be true or false"),
        ({"transactions": {"a": 1}}, "'transactions' must be an array"),
        ({"transactions": ["1500"]}, r"transactions\[\] must hold objects"),
        ({"transactions": [{"amount": "1"}]}, r"transactions\[\] needs 'event_time'"),
        (
            {"transactions": [{"event_time": "2017-07-23T01:01:02Z", "amount": 1.5}]},
            r"'transactions\[\].amount' must be a decimal string",
        ),
        (
            {"transactions": [{"event_time": "x", "amount": "1"}]},
            r"'transactions\[\].event_time' must be an RFC 3339 time",
        ),
        (
            {"transactions": [{"event_time": "2017-07-23T01:01:02Z", "amount": "1", "offset": -1}]},
            r"transactions\[\].offset must be a non-negative integer",
        ),
    ],
)
def test_a_field_of_the_wrong_shape_is_a_bad_record(
    overrides: dict[str, object], reason: str
) -> None:
    record = alert_record()
    record.update(overrides)

    with pytest.raises(BadRecord, match=reason):
        parse_record(encoded(record))


def test_a_bad_record_reason_quotes_record_text_escaped_and_bounded() -> None:
    with pytest.raises(BadRecord) as caught:
        parsed(kind="\x1b[2J" + "x" * 10_000)

    reason = str(caught.value)
    assert "\x1b" not in reason
    assert "\\x1b[2J" in reason
    assert len(reason) < 200


# --- merging ---------------------------------------------------------------------------------


def test_crossed_then_closed_is_one_alert_that_goes_crossed_then_closed() -> None:
    book = AlertBook()

    first = book.apply(parsed("threshold_crossed"))
    second = book.apply(parsed("window_closed"))

    assert first is not None and second is not None
    assert first.status is AlertStatus.CROSSED
    assert (first.total, first.count) == (Decimal("10500.00"), 6)
    assert second.status is AlertStatus.CLOSED
    # Final figures and evidence come from the closed record ...
    assert (second.total, second.count) == (Decimal("12000.50"), 7)
    assert second.last_event == datetime(2017, 7, 23, 1, 8, tzinfo=UTC)
    # ... and the time it first crossed is kept.
    assert second.crossed_at == datetime(2026, 11, 28, 13, 0, 0, 123000, tzinfo=UTC)
    assert second.closed_at == datetime(2026, 11, 28, 13, 5, tzinfo=UTC)
    assert second.updated_at == second.closed_at
    assert len(book) == 1
    assert book.distinct == 1
    assert book.get(ALERT_ID) == second


def test_a_crossed_record_after_the_closed_one_changes_nothing() -> None:
    book = AlertBook()

    closed = book.apply(parsed("window_closed"))
    late = book.apply(parsed("threshold_crossed"))

    assert closed is not None
    assert closed.status is AlertStatus.CLOSED
    assert closed.crossed_at is None
    assert late is None
    assert book.get(ALERT_ID) == closed
    assert book.distinct == 1


@pytest.mark.parametrize("kind", ["threshold_crossed", "window_closed"])
def test_an_exact_duplicate_is_shown_once(kind: str) -> None:
    book = AlertBook()

    assert book.apply(parsed(kind)) is not None
    assert book.apply(parsed(kind)) is None
    assert book.apply(parsed(kind)) is None
    assert book.distinct == 1


def test_duplicates_of_both_kinds_interleaved_give_exactly_two_changes() -> None:
    """At-least-once redelivery after a worker crash: crossed, crossed, closed, crossed, closed."""
    book = AlertBook()
    kinds = ["threshold_crossed", "threshold_crossed", "window_closed"]
    kinds += ["threshold_crossed", "window_closed"]

    changes = [book.apply(parsed(kind)) for kind in kinds]

    shown = [alert.status for alert in changes if alert is not None]
    assert shown == [AlertStatus.CROSSED, AlertStatus.CLOSED]


def test_a_redelivered_duplicate_keeps_the_first_figures() -> None:
    book = AlertBook()
    book.apply(parsed("window_closed"))

    assert book.apply(parsed("window_closed", total="99999.00")) is None
    alert = book.get(ALERT_ID)
    assert alert is not None and alert.total == Decimal("12000.50")


def test_alerts_of_different_windows_are_kept_apart() -> None:
    book = AlertBook()
    next_window = "66:26:1500771720000"

    book.apply(parsed("threshold_crossed"))
    other = book.apply(parsed("threshold_crossed", alert_id=next_window))

    assert other is not None and other.alert_id == next_window
    assert len(book) == 2
    assert book.distinct == 2


def test_the_book_forgets_the_least_recently_changed_alert_beyond_its_capacity() -> None:
    book = AlertBook(capacity=2)
    book.apply(parsed(alert_id="a"))
    book.apply(parsed(alert_id="b"))
    book.apply(parsed("window_closed", alert_id="a"))  # "a" changed last: "b" is now oldest

    book.apply(parsed(alert_id="c"))

    assert book.get("b") is None
    assert book.get("a") is not None and book.get("c") is not None
    assert len(book) == 2
    assert book.distinct == 3


def test_a_book_needs_room_for_one_alert() -> None:
    with pytest.raises(ValueError, match="capacity"):
        AlertBook(capacity=0)
