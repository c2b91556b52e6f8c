"""Broken transaction lines, each with exactly one defect and the dead-letter reason it must get.

`generator.stream` mixes these into the stream (fraction `malformed`); the pipeline must route
each one to the dead-letter topic under `expected_reason` and keep going. Only defects whose
reason is unambiguous are produced: e.g. no `7e3` amount (a `Decimal` reads it as 7000) and no
whitespace around fields (a parser may strip it).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeAlias

DlqReason: TypeAlias = Literal[
    "field_count", "bad_timestamp", "bad_account", "bad_amount", "not_utf8"
]
DLQ_REASONS: tuple[DlqReason, ...] = (
    "field_count",
    "bad_timestamp",
    "bad_account",
    "bad_amount",
    "not_utf8",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Invalid UTF-8: a lone Latin-1 byte, a truncated sequence, an overlong encoding, a UTF-16
# surrogate, a stray continuation byte, and 0xFF (never valid).
_NOT_UTF8 = (b"M\xfcller", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80", b"\xff")

_BAD_ACCOUNTS = (
    "",
    "6 6",
    "acc#7",
    "ab:cd",
    "x/y",
    "kontø",  # valid UTF-8, but outside [A-Za-z0-9_.-]
    "9" * 65,
)

_BAD_AMOUNTS = (
    "",
    "abc",
    "0",
    "0.00",
    "-15",
    "-0.5",
    "12.345",
    "1000000000.01",
    "25000000000",
    "12,50",
    "1.2.3",
    "NaN",
    "Infinity",
    "0x1F",
    "\uff11\uff12\uff10",  # fullwidth "120": int() and Decimal() accept it, the format does not
)


def malformed_value(
    rng: random.Random,
    reason: DlqReason,
    *,
    event_ms: int,
    timestamp: str,
    sender: str,
    receiver: str,
    amount: str,
) -> bytes:
    """A line built from valid fields with one defect of the kind `reason` names."""
    return _BUILDERS[reason](rng, event_ms, timestamp, sender, receiver, amount)


def _field_count(
    rng: random.Random, event_ms: int, ts: str, sender: str, receiver: str, amount: str
) -> bytes:
    variants = (
        "",
        f"{ts};{sender};{receiver}",
        f"{sender};{receiver};{amount}",
        f"{ts};{sender};{receiver};{amount};",
        f"{ts};{sender};{receiver};{amount};{amount}",
        f"{ts},{sender},{receiver},{amount}",
    )
    return rng.choice(variants).encode()


def _bad_timestamp(
    rng: random.Random, event_ms: int, ts: str, sender: str, receiver: str, amount: str
) -> bytes:
    t = _EPOCH + timedelta(milliseconds=event_ms)
    day, weekday, yy = f"{t.day:02d}", _WEEKDAYS[t.weekday()], f"{t.year % 100:02d}"
    hms = f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    variants = (
        f"{weekday}, 31-Feb-{yy} {hms} UTC",  # no such day
        f"{weekday}, {day}-{_MONTHS[t.month - 1]}-{yy} 25:{t.minute:02d}:{t.second:02d} UTC",
        f"{weekday}, {day}-Foo-{yy} {hms} UTC",
        f"{t.year:04d}-02-30T{hms}Z",
        f"{t.year:04d}-13-{day}T{hms}Z",
        f"{t.year:04d}-{t.month:02d}-{day}T{t.hour:02d}:61:{t.second:02d}Z",
        f"{t.year:04d}-{t.month:02d}-{day}T{hms}",  # RFC 3339 requires the zone
        f"{day}/{t.month:02d}/{t.year:04d} {hms}",
        "yesterday",
        "",
    )
    return f"{rng.choice(variants)};{sender};{receiver};{amount}".encode()


def _bad_account(
    rng: random.Random, event_ms: int, ts: str, sender: str, receiver: str, amount: str
) -> bytes:
    bad = rng.choice(_BAD_ACCOUNTS)
    if rng.random() < 0.5:
        return f"{ts};{bad};{receiver};{amount}".encode()
    return f"{ts};{sender};{bad};{amount}".encode()


def _bad_amount(
    rng: random.Random, event_ms: int, ts: str, sender: str, receiver: str, amount: str
) -> bytes:
    return f"{ts};{sender};{receiver};{rng.choice(_BAD_AMOUNTS)}".encode()


def _not_utf8(
    rng: random.Random, event_ms: int, ts: str, sender: str, receiver: str, amount: str
) -> bytes:
    junk = rng.choice(_NOT_UTF8)
    fields = [ts.encode(), sender.encode(), receiver.encode(), amount.encode()]
    where = rng.randrange(1, 4)  # an account or the amount; the line keeps its four fields
    fields[where] = fields[where] + junk
    return b";".join(fields)


_Builder: TypeAlias = Callable[[random.Random, int, str, str, str, str], bytes]
_BUILDERS: dict[DlqReason, _Builder] = {
    "field_count": _field_count,
    "bad_timestamp": _bad_timestamp,
    "bad_account": _bad_account,
    "bad_amount": _bad_amount,
    "not_utf8": _not_utf8,
}
