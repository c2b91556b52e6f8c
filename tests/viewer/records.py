"""Alert records as the worker writes them (schema 1), for the viewer's tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

ALERT_ID = "66:26:1500771600000"


def alert_record(kind: str = "threshold_crossed", **overrides: Any) -> dict[str, Any]:
    """The record of DESIGN.md §3 for pair 66 -> 26; ``overrides`` replace or add fields.

    An override of ``None`` removes the field, to build records that lack one.
    """
    closed = kind == "window_closed"
    record: dict[str, Any] = {
        "schema": 1,
        "alert_id": ALERT_ID,
        "kind": kind,
        "sender": "66",
        "receiver": "26",
        "window_start": "2017-07-23T01:00:00.000Z",
        "window_end": "2017-07-23T01:10:00.000Z",
        "total": "12000.50" if closed else "10500.00",
        "threshold": "10000.00",
        "count": 7 if closed else 6,
        "first_event": "2017-07-23T01:01:02.000Z",
        "last_event": "2017-07-23T01:08:00.000Z" if closed else "2017-07-23T01:06:47.000Z",
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
        "detected_at": "2026-11-28T13:05:00.000Z" if closed else "2026-11-28T13:00:00.123Z",
    }
    for field, value in overrides.items():
        if value is None:
            record.pop(field, None)
        else:
            record[field] = value
    return record


def encoded(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


MINUTE_MS = 60_000
SIZE_MS = 10 * MINUTE_MS
T0_MS = 1_500_771_600_000  # 2017-07-23T01:00:00Z, a multiple of the 2-minute slide


def rfc3339(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def window_record(
    kind: str,
    start_ms: int,
    total: str,
    transactions: list[tuple[int, str, int, int]],
    *,
    sender: str = "66",
    receiver: str = "26",
    detected_at: str = "2026-11-28T13:00:00.000Z",
    size_ms: int = SIZE_MS,
    truncated: bool = False,
) -> dict[str, Any]:
    """A record of window ``[start_ms, start_ms + size_ms)`` of a pair, schema 1.

    ``transactions`` are (event time ms, amount, input partition, input offset).
    """
    times = [time for time, _, _, _ in transactions]
    return alert_record(
        kind,
        alert_id=f"{sender}:{receiver}:{start_ms}",
        sender=sender,
        receiver=receiver,
        window_start=rfc3339(start_ms),
        window_end=rfc3339(start_ms + size_ms),
        total=total,
        count=len(transactions),
        first_event=rfc3339(min(times)),
        last_event=rfc3339(max(times)),
        transactions=[
            {"event_time": rfc3339(time), "amount": amount, "partition": p, "offset": o}
            for time, amount, p, o in transactions
        ],
        truncated=truncated,
        detected_at=detected_at,
    )
