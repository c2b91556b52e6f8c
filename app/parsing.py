"""Input parsing: one raw Kafka value -> a :class:`Transaction`, or :class:`BadRecord`.

First step of the flow (DESIGN §1, §4). Pure: no Faust, no I/O. Money is integer cents.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

from app.errors import BadRecord

# Dead-letter reasons (DESIGN §4); "late" is decided by the windowing, not here.
FIELD_COUNT = "field_count"
BAD_TIMESTAMP = "bad_timestamp"
BAD_ACCOUNT = "bad_account"
BAD_AMOUNT = "bad_amount"
NOT_UTF8 = "not_utf8"
OVERSIZED = "oversized"
LATE = "late"
REASONS = (FIELD_COUNT, BAD_TIMESTAMP, BAD_ACCOUNT, BAD_AMOUNT, NOT_UTF8, OVERSIZED, LATE)

MAX_AMOUNT_CENTS = 1_000_000_000 * 100  # one billion dollars: above that is a typo or an attack

_ACCOUNT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_AMOUNT = re.compile(r"([0-9]{1,16})(?:\.([0-9]{1,2}))?")
_MONTHS = {name: number for number, name in enumerate(calendar.month_abbr) if name}
_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
# Go's RFC 850 layout "Monday, 02-Jan-06 15:04:05 MST", as the original generator wrote it.
_RFC850 = re.compile(
    rf"(?:{_DAYS}), ([0-9]{{2}})-([A-Z][a-z]{{2}})-([0-9]{{2}}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) (?:UTC|GMT)"
)
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Transaction(NamedTuple):
    """One money transfer: event time in epoch milliseconds, amount in cents."""

    time_ms: int
    sender: str
    receiver: str
    cents: int

    @property
    def pair(self) -> str:
        """The table key: the ordered pair ``SENDER:RECEIVER`` (':' is not an account char)."""
        return f"{self.sender}:{self.receiver}"


def parse_transaction(raw: bytes | None, *, max_bytes: int) -> Transaction:
    """Parse ``TIMESTAMP;SENDER;RECEIVER;AMOUNT`` or raise :class:`BadRecord`."""
    if raw is None:
        raise BadRecord(FIELD_COUNT, "empty record (no value)")
    if len(raw) > max_bytes:
        raise BadRecord(OVERSIZED, f"{len(raw)} bytes > {max_bytes}")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRecord(NOT_UTF8, f"invalid UTF-8 at byte {exc.start}") from None
    if line.endswith("\n"):  # a line as written by a shell pipe
        line = line[:-2] if line.endswith("\r\n") else line[:-1]
    fields = line.split(";")
    if len(fields) != 4:
        raise BadRecord(FIELD_COUNT, f"{len(fields)} fields, expected 4")
    stamp, sender, receiver, amount = fields
    time_ms = parse_timestamp_ms(stamp)
    for account in (sender, receiver):
        if not _ACCOUNT.fullmatch(account):
            raise BadRecord(BAD_ACCOUNT, "account id must match [A-Za-z0-9_.-]{1,64}")
    return Transaction(time_ms, sender, receiver, parse_cents(amount))


def parse_timestamp_ms(text: str) -> int:
    """Event time in epoch ms from RFC 850 (Go layout, UTC/GMT) or RFC 3339."""
    try:
        if match := _RFC850.fullmatch(text):
            day, month, year2, hour, minute, second = match.groups()
            if month not in _MONTHS:
                raise ValueError(month)
            century = 1900 if int(year2) >= 69 else 2000  # Go's rule for two-digit years
            moment = datetime(
                century + int(year2),
                _MONTHS[month],
                int(day),
                int(hour),
                int(minute),
                int(second),
                tzinfo=UTC,
            )
            return _epoch_ms(moment)
        if match := _RFC3339.fullmatch(text):
            year, month, day, hour, minute, second, fraction, zulu, sign, oh, om = match.groups()
            offset = timedelta(0)
            if not zulu:
                if int(oh) > 23 or int(om) > 59:
                    raise ValueError("offset")
                offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
            moment = datetime(
                int(year),
                int(month),
                int(day),
                int(hour),
                int(minute),
                int(second),
                tzinfo=timezone(offset),
            )
            millis = int((fraction or "0")[:3].ljust(3, "0"))  # ms precision: truncate the rest
            return _epoch_ms(moment) + millis
    except ValueError:
        raise BadRecord(BAD_TIMESTAMP, "impossible date or time") from None
    raise BadRecord(BAD_TIMESTAMP, "neither RFC 850 (Go layout) nor RFC 3339")


def parse_cents(text: str) -> int:
    """Dollars with at most two decimals -> positive integer cents below the sane bound."""
    match = _AMOUNT.fullmatch(text)
    if not match:
        raise BadRecord(BAD_AMOUNT, "not a positive decimal with at most 2 decimals")
    dollars, decimals = match.groups()
    cents = int(dollars) * 100 + int((decimals or "0").ljust(2, "0"))
    if cents <= 0:
        raise BadRecord(BAD_AMOUNT, "amount must be > 0")
    if cents > MAX_AMOUNT_CENTS:
        raise BadRecord(BAD_AMOUNT, "amount above 1,000,000,000 dollars")
    return cents


def _epoch_ms(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
