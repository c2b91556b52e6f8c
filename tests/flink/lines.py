"""The oracle's own reading of a transaction line (DESIGN §1), written from the spec, not from app/.

The PyFlink job (job.py) parses with this, so a difference between it and app/parsing.py shows
up in the parity tests as a different set of dropped lines; test_lines.py compares the two
directly on many generated lines. Stdlib only: it runs in the Flink venv and in the project's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

MAX_CENTS = 100_000_000_000  # $1,000,000,000
MAX_RECORD_BYTES = 65_536

_MONTH_NUMBER = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_WEEKDAY = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
# Go's time.RFC850 layout "Monday, 02-Jan-06 15:04:05 MST" with the zones the generator writes.
_GO_RFC850 = re.compile(
    _WEEKDAY + r", (?P<d>\d\d)-(?P<mon>[A-Za-z]{3})-(?P<yy>\d\d) "
    r"(?P<H>\d\d):(?P<M>\d\d):(?P<S>\d\d) (?:UTC|GMT)",
    re.ASCII,
)
_RFC3339 = re.compile(
    r"(?P<y>\d{4})-(?P<m>\d\d)-(?P<d>\d\d)[Tt](?P<H>\d\d):(?P<M>\d\d):(?P<S>\d\d)"
    r"(?:\.(?P<frac>\d{1,9}))?(?:(?P<z>[Zz])|(?P<sign>[-+])(?P<oh>\d\d):(?P<om>\d\d))",
    re.ASCII,
)
_ACCOUNT = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)
_AMOUNT = re.compile(r"(?P<dollars>\d{1,16})(?:\.(?P<cents>\d{1,2}))?", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class Line(NamedTuple):
    """A usable transaction: event time in epoch ms, the pair, the amount in cents."""

    time_ms: int
    sender: str
    receiver: str
    cents: int


class Unusable(Exception):
    """The line is dropped; ``reason`` uses the names of the worker's dead-letter reasons."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_line(raw: bytes | None, max_bytes: int = MAX_RECORD_BYTES) -> Line:
    """The transaction in ``raw`` or :class:`Unusable` with the first defect found."""
    if raw is None:
        raise Unusable("field_count")
    if len(raw) > max_bytes:
        raise Unusable("oversized")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unusable("not_utf8") from None
    # One line terminator, as `echo ... | kafka-console-producer` leaves it.
    text = text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    parts = text.split(";")
    if len(parts) != 4:
        raise Unusable("field_count")
    stamp, sender, receiver, amount = parts
    time_ms = event_time_ms(stamp)
    if not (_ACCOUNT.fullmatch(sender) and _ACCOUNT.fullmatch(receiver)):
        raise Unusable("bad_account")
    return Line(time_ms, sender, receiver, amount_cents(amount))


def event_time_ms(stamp: str) -> int:
    """Epoch ms of a Go RFC 850 (UTC/GMT, two-digit year) or RFC 3339 timestamp."""
    try:
        if found := _GO_RFC850.fullmatch(stamp):
            month = _MONTH_NUMBER.get(found["mon"])
            if month is None:
                raise ValueError("month")
            yy = int(found["yy"])
            year = 1900 + yy if yy >= 69 else 2000 + yy  # Go's pivot for two-digit years
            moment = datetime(
                year, month, int(found["d"]), int(found["H"]), int(found["M"]), int(found["S"]),
                tzinfo=UTC,
            )  # fmt: skip
            return (moment - _EPOCH) // _MS
        if found := _RFC3339.fullmatch(stamp):
            zone = UTC
            if found["sign"]:
                hours, minutes = int(found["oh"]), int(found["om"])
                if hours > 23 or minutes > 59:
                    raise ValueError("offset")
                sign = -1 if found["sign"] == "-" else 1
                zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
            moment = datetime(
                int(found["y"]), int(found["m"]), int(found["d"]),
                int(found["H"]), int(found["M"]), int(found["S"]), tzinfo=zone,
            )  # fmt: skip
            millis = int(((found["frac"] or "") + "000")[:3])  # ms precision, truncated
            return (moment - _EPOCH) // _MS + millis
    except ValueError:  # a day, month, hour ... out of range
        raise Unusable("bad_timestamp") from None
    raise Unusable("bad_timestamp")


def amount_cents(text: str) -> int:
    """Dollars with at most two decimals, > 0 and at most $1e9, as integer cents."""
    found = _AMOUNT.fullmatch(text)
    if not found:
        raise Unusable("bad_amount")
    cents = int(found["dollars"]) * 100 + int((found["cents"] or "0").ljust(2, "0"))
    if not 0 < cents <= MAX_CENTS:
        raise Unusable("bad_amount")
    return cents
