"""Alert records as the worker writes them (schema 1), for the viewer's tests."""

from __future__ import annotations

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
