"""One transaction line, `TIMESTAMP;SENDER;RECEIVER;AMOUNT`, parsed the way the worker does it.

Shared by the peers that run in their own virtual envs (bench/peers/quix_job.py,
bench/peers/bytewax_job.py), so it needs nothing but the standard library: RFC 850 or RFC 3339
timestamps to epoch milliseconds, account ids, amounts to integer cents; unusable lines are None.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_RFC850 = re.compile(
    rf"(?:{_DAYS}), ([0-9]{{2}})-([A-Z][a-z]{{2}})-([0-9]{{2}}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) (?:UTC|GMT)"
)
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_ACCOUNT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_AMOUNT = re.compile(r"([0-9]{1,16})(?:\.([0-9]{1,2}))?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CENTS = 1_000_000_000 * 100


def _epoch_ms(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def event_time_ms(text: str) -> int | None:
    try:
        if match := _RFC850.fullmatch(text):
            day, month, yy, hour, minute, second = match.groups()
            century = 1900 if int(yy) >= 69 else 2000
            moment = datetime(
                century + int(yy), _MONTHS[month], int(day), int(hour), int(minute), int(second),
                tzinfo=UTC,
            )  # fmt: skip
            return _epoch_ms(moment)
        if match := _RFC3339.fullmatch(text):
            year, month, day, hour, minute, second, frac, zulu, sign, oh, om = match.groups()
            offset = timedelta(0)
            if not zulu:
                offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
            moment = datetime(
                int(year), int(month), int(day), int(hour), int(minute), int(second),
                tzinfo=timezone(offset),
            )  # fmt: skip
            return _epoch_ms(moment) + int((frac or "0")[:3].ljust(3, "0"))
    except (ValueError, KeyError):
        return None
    return None


def parse(raw: bytes) -> dict[str, Any] | None:
    """A line to {t, sender, receiver, cents}, or None if it cannot be used."""
    try:
        fields = raw.decode("utf-8").rstrip("\r\n").split(";")
    except UnicodeDecodeError:
        return None
    if len(fields) != 4:
        return None
    stamp, sender, receiver, amount = fields
    t = event_time_ms(stamp)
    match = _AMOUNT.fullmatch(amount)
    if t is None or not match or not _ACCOUNT.fullmatch(sender) or not _ACCOUNT.fullmatch(receiver):
        return None
    dollars, decimals = match.groups()
    cents = int(dollars) * 100 + int((decimals or "0").ljust(2, "0"))
    if not 0 < cents <= MAX_CENTS:
        return None
    return {"t": t, "sender": sender, "receiver": receiver, "cents": cents}
