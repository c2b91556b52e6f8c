"""The Quix Streams peer: the same detection as a Quix Streams application (its own venv).

Runs in .venv-quix, started by the benchmark:

    .venv-quix/bin/python bench/peers/quix_job.py --bootstrap HOST:PORT --topic T \
        --output-topic T2 --group G --state-dir DIR

Each line is parsed with the same rules as the worker (RFC 850 or RFC 3339, account ids, amounts
to integer cents; unusable lines are dropped) and timestamped with its event time; records are
keyed by pair, so windows are grouped by the message key. Hopping windows of 10 min sliding by
2 min (Flink's SlidingEventTimeWindows, epoch-aligned), grace 0, sum and count of cents in
RocksDB state with changelog topics, emitted when the window closes (`final()`, closed by each
partition's latest event time), kept when total > threshold, written to a topic as JSON.
At-least-once, Quix's defaults otherwise. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from quixstreams import Application
from quixstreams.dataframe.windows import Count, Sum
from quixstreams.models.serializers import Deserializer

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


class TransactionLine(Deserializer):  # type: ignore[misc]
    def __call__(self, value: bytes, ctx: Any) -> dict[str, Any] | None:
        return parse(value)


def event_time(value: Any, headers: Any, timestamp: int, timestamp_type: Any) -> int:
    return int(value["t"]) if value is not None else timestamp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--threshold-cents", type=int, default=10_000_00)
    args = parser.parse_args(argv)

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    transactions = app.topic(
        args.topic,
        key_deserializer="bytes",
        value_deserializer=TransactionLine(),
        timestamp_extractor=event_time,
    )
    fraud = app.topic(args.output_topic, key_serializer="bytes", value_serializer="json")
    threshold = args.threshold_cents
    sdf = app.dataframe(transactions)
    sdf = sdf.filter(lambda tx: tx is not None)
    sdf = (
        sdf.hopping_window(duration_ms=600_000, step_ms=120_000, grace_ms=0)
        .agg(total=Sum("cents"), count=Count())
        .final()
    )
    sdf = sdf.filter(lambda window: window["total"] > threshold)
    sdf.to_topic(fraud)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
