"""Text layouts of one transaction line: timestamps (RFC 850 / RFC 3339) and dollar amounts.

Pure functions used by `generator.stream` to render records and by `generator.truth` to write
the ground truth. Money is integer cents here; nothing in the generator touches a float amount.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal, TypeAlias

Layout: TypeAlias = Literal["rfc850", "rfc3339"]
LAYOUTS: tuple[Layout, ...] = ("rfc850", "rfc3339")

# Fixed English names: strftime's %A/%b follow the process locale, Go's layout does not.
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

# A two-digit year only round-trips inside the century Go and Python agree on (69..99 -> 19xx).
RFC850_FIRST_YEAR = 1969
RFC850_LAST_YEAR = 2068


def _utc(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def format_rfc850(ms: int) -> str:
    """Go's `time.RFC850` in UTC, seconds precision: `Sunday, 23-Jul-17 01:06:47 UTC`."""
    t = _utc(ms // 1000)
    return (
        f"{_WEEKDAYS[t.weekday()]}, {t.day:02d}-{_MONTHS[t.month - 1]}-{t.year % 100:02d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} UTC"
    )


def format_rfc3339(ms: int) -> str:
    """RFC 3339 in UTC; the millisecond fraction only when there is one (`...47Z`, `...47.250Z`)."""
    seconds, millis = divmod(ms, 1000)
    t = _utc(seconds)
    base = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return f"{base}.{millis:03d}Z" if millis else f"{base}Z"


def format_rfc3339_ms(ms: int) -> str:
    """RFC 3339 in UTC, always with milliseconds: the ground-truth file's fixed layout."""
    seconds, millis = divmod(ms, 1000)
    t = _utc(seconds)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{millis:03d}Z"
    )


def parse_rfc3339(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp with a zone (`Z` or `+02:00`).

    Raises `ValueError` for anything else, including a timestamp without a zone: a start time
    that silently depends on the machine's local zone would not be reproducible.
    """
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no zone; add Z or an offset such as +00:00")
    return (parsed - _EPOCH) // _ONE_MS


def shown_event_time(ms: int, layout: Layout) -> int:
    """The event time a reader recovers from the rendered text: RFC 850 drops the milliseconds."""
    return ms - ms % 1000 if layout == "rfc850" else ms


class TimestampFormatter:
    """Renders event times in one layout, caching the date part of the current day.

    Building the date is the costliest step of rendering a record, and a run stays on one day
    for thousands of records, so the cache matters for `--rate 0` throughput.
    """

    __slots__ = ("_day", "_day_text", "_layout")

    def __init__(self, layout: Layout) -> None:
        self._layout: Layout = layout
        self._day = -1
        self._day_text = ""

    def __call__(self, ms: int) -> str:
        seconds, millis = divmod(ms, 1000)
        day, second_of_day = divmod(seconds, 86_400)
        if day != self._day:
            self._day = day
            text = format_rfc850(day * 86_400_000) if self._layout == "rfc850" else ""
            # Everything before the time of day: "Sunday, 23-Jul-17 " / "2017-07-23T".
            self._day_text = text[:-12] if text else format_rfc3339(day * 86_400_000)[:11]
        hours, rest = divmod(second_of_day, 3600)
        minutes, secs = divmod(rest, 60)
        if self._layout == "rfc850":
            return f"{self._day_text}{hours:02d}:{minutes:02d}:{secs:02d} UTC"
        if millis:
            return f"{self._day_text}{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}Z"
        return f"{self._day_text}{hours:02d}:{minutes:02d}:{secs:02d}Z"


def format_amount(cents: int, *, two_decimals: bool = False) -> str:
    """Dollars as the line carries them: `7810`, `7810.5` (or `7810.50` with two_decimals)."""
    dollars, rest = divmod(cents, 100)
    if rest == 0:
        return str(dollars)
    if rest % 10 == 0 and not two_decimals:
        return f"{dollars}.{rest // 10}"
    return f"{dollars}.{rest:02d}"


def format_decimal(cents: int) -> str:
    """Cents as a decimal string with exactly two places (`12345.67`), for the ground truth."""
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), 100)
    return f"{sign}{dollars}.{rest:02d}"
