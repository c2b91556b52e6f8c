"""An independent reading of the line format (DESIGN §1), written for the generator's tests.

It shares no code with `generator` or `app`: it is what a test trusts to say whether a line is
valid and, if not, which dead-letter reason it deserves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

ACCOUNT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
AMOUNT = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
RFC850 = re.compile(
    r"(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
    r"[0-9]{2}-[A-Z][a-z]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} (UTC|GMT)"
)
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)


@dataclass(frozen=True)
class Line:
    """A valid line, read."""

    time_ms: int
    sender: str
    receiver: str
    cents: int


def read_time_ms(text: str) -> int | None:
    """Epoch ms of a timestamp in either layout, None if it is not one."""
    if RFC850.fullmatch(text):
        try:
            parsed = datetime.strptime(text[:-4], "%A, %d-%b-%y %H:%M:%S")
        except ValueError:
            return None
        return int(parsed.replace(tzinfo=UTC).timestamp()) * 1000
    if RFC3339.fullmatch(text):
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return round(parsed.timestamp() * 1000)
    return None


def read_cents(text: str) -> int | None:
    if not AMOUNT.fullmatch(text):
        return None
    whole, _, fraction = text.partition(".")
    cents = int(whole) * 100 + int(fraction.ljust(2, "0") or "0")
    return cents if 0 < cents <= 1_000_000_000 * 100 else None


def classify(value: bytes) -> str | Line:
    """A `Line` for a valid value, otherwise the dead-letter reason."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    fields = text.split(";")
    if len(fields) != 4:
        return "field_count"
    stamp, sender, receiver, amount = fields
    time_ms = read_time_ms(stamp)
    if time_ms is None:
        return "bad_timestamp"
    if not (ACCOUNT.fullmatch(sender) and ACCOUNT.fullmatch(receiver)):
        return "bad_account"
    cents = read_cents(amount)
    if cents is None:
        return "bad_amount"
    return Line(time_ms, sender, receiver, cents)
