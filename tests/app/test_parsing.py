"""Parsing of input lines: both timestamp layouts, cents, and every dead-letter reason."""

from __future__ import annotations

import pytest

from app.errors import BadRecord
from app.parsing import Transaction, parse_cents, parse_timestamp_ms, parse_transaction

JUL_23_2017_010647 = 1_500_772_007_000


def parse(raw: bytes) -> Transaction:
    return parse_transaction(raw, max_bytes=200)


def reason_of(raw: bytes | None) -> str:
    with pytest.raises(BadRecord) as caught:
        parse_transaction(raw, max_bytes=200)
    return caught.value.reason


def test_the_original_line() -> None:
    assert parse(b"Sunday, 23-Jul-17 01:06:47 UTC;66;26;7810") == Transaction(
        JUL_23_2017_010647, "66", "26", 781000
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sunday, 23-Jul-17 01:06:47 UTC", JUL_23_2017_010647),
        ("Sunday, 23-Jul-17 01:06:47 GMT", JUL_23_2017_010647),
        ("2017-07-23T01:06:47Z", JUL_23_2017_010647),
        ("2017-07-23t01:06:47z", JUL_23_2017_010647),
        ("2017-07-23T01:06:47.25Z", JUL_23_2017_010647 + 250),
        ("2017-07-23T01:06:47.123456789Z", JUL_23_2017_010647 + 123),
        ("2017-07-23T03:06:47+02:00", JUL_23_2017_010647),
        ("2017-07-22T23:36:47-01:30", JUL_23_2017_010647),
        ("Thursday, 01-Jan-70 00:00:00 UTC", 0),  # Go: two-digit years >= 69 are 19xx
        ("Friday, 31-Dec-68 23:59:59 UTC", 3_124_223_999_000),  # and below are 20xx
    ],
)
def test_timestamp_layouts(text: str, expected: int) -> None:
    assert parse_timestamp_ms(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Sunday, 32-Jul-17 01:06:47 UTC",  # impossible day
        "Sunday, 23-Foo-17 01:06:47 UTC",
        "Sunday, 23-Jul-17 25:06:47 UTC",
        "Sunday, 23-Jul-17 01:06:47 CET",  # only UTC/GMT, as the generator wrote
        "Sun, 23-Jul-17 01:06:47 UTC",
        "2017-02-30T00:00:00Z",
        "2017-07-23T01:06:47",  # no zone
        "2017-07-23T01:06:47+25:00",
        "2017-07-23 01:06:47Z",
        "",
        "1500771607",
    ],
)
def test_bad_timestamps(text: str) -> None:
    assert reason_of(f"{text};1;2;3".encode()) == "bad_timestamp"


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("7810", 781000),
        ("7810.5", 781050),
        ("7810.50", 781050),
        ("0.01", 1),
        ("007", 700),
        ("1000000000", 100_000_000_000),
    ],
)
def test_amounts_in_cents(text: str, cents: int) -> None:
    assert parse_cents(text) == cents


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "0.00",
        "-5",
        "+5",
        "1.234",
        "1e3",
        "NaN",
        "Infinity",
        "1,000",
        "",
        " 5",
        "5.",
        ".5",
        "1000000000.01",
        "99999999999999999",
    ],
)
def test_bad_amounts(text: str) -> None:
    assert reason_of(f"2017-07-23T01:06:47Z;1;2;{text}".encode()) == "bad_amount"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "field_count"),
        (b"", "field_count"),
        (b"2017-07-23T01:06:47Z;1;2", "field_count"),
        (b"2017-07-23T01:06:47Z;1;2;3;4", "field_count"),
        (b"2017-07-23T01:06:47Z;;2;3", "bad_account"),
        (b"2017-07-23T01:06:47Z;a b;2;3", "bad_account"),
        (b"2017-07-23T01:06:47Z;1;2:3;3", "bad_account"),
        (b"2017-07-23T01:06:47Z;1;" + b"x" * 65 + b";3", "bad_account"),
        (b"2017-07-23T01:06:47Z;1;\x1b[31m;3", "bad_account"),
        (b"2017-07-23T01:06:47Z;\xff;2;3", "not_utf8"),
        (b"x" * 201, "oversized"),
    ],
)
def test_dead_letter_reasons(raw: bytes | None, reason: str) -> None:
    assert reason_of(raw) == reason


def test_accounts_and_trailing_newline() -> None:
    tx = parse(b"2017-07-23T01:06:47Z;acct_1.A-9;B;12.3\r\n")
    assert (tx.sender, tx.receiver, tx.cents, tx.pair) == ("acct_1.A-9", "B", 1230, "acct_1.A-9:B")
    assert parse(b"2017-07-23T01:06:47Z;1;2;3\n").cents == 300
