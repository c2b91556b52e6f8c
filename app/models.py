"""Output records: fraud alerts (schema 1, DESIGN §3) and dead letters (DESIGN §4). Pure.

Both are JSON objects; money is a decimal string with two decimals, times are RFC 3339 UTC with
milliseconds. The alert schema is documented in docs/alerts.md; change ``ALERT_SCHEMA`` with it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from app.windowing import WindowResult

ALERT_SCHEMA = 1
DEAD_LETTER_SCHEMA = 1
THRESHOLD_CROSSED = "threshold_crossed"
WINDOW_CLOSED = "window_closed"
MAX_RAW_CHARS = 1024  # a dead letter keeps at most this much of the raw record

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def rfc3339_ms(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def alert_id(sender: str, receiver: str, window_start_ms: int) -> str:
    return f"{sender}:{receiver}:{window_start_ms}"


def build_alert(
    kind: str,
    pair: str,
    window: WindowResult,
    *,
    size_ms: int,
    threshold_cents: int,
    detected_at_ms: int,
) -> dict[str, Any]:
    sender, receiver = pair.split(":", 1)
    return {
        "schema": ALERT_SCHEMA,
        "alert_id": alert_id(sender, receiver, window.start_ms),
        "kind": kind,
        "sender": sender,
        "receiver": receiver,
        "window_start": rfc3339_ms(window.start_ms),
        "window_end": rfc3339_ms(window.start_ms + size_ms),
        "total": dollars(window.total),
        "threshold": dollars(threshold_cents),
        "count": window.transfers,
        "first_event": rfc3339_ms(window.first_ms),
        "last_event": rfc3339_ms(window.last_ms),
        "transactions": [
            {"event_time": rfc3339_ms(t), "amount": dollars(c), "partition": p, "offset": o}
            for t, c, p, o in window.evidence
        ],
        "truncated": window.truncated,
        "detected_at": rfc3339_ms(detected_at_ms),
    }


def safe_text(raw: bytes, limit: int = MAX_RAW_CHARS) -> str:
    """Printable text of untrusted bytes for logs and dead letters: cut to ``limit`` bytes,
    invalid UTF-8 and control characters (CR, LF, ESC, ...) shown as escapes."""
    text = raw[:limit].decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def build_dead_letter(
    reason: str,
    detail: str,
    raw: bytes | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    detected_at_ms: int,
) -> dict[str, Any]:
    raw = raw or b""
    return {
        "schema": DEAD_LETTER_SCHEMA,
        "reason": reason,
        "detail": detail,
        "raw": safe_text(raw),
        "raw_bytes": len(raw),
        "truncated": len(raw) > MAX_RAW_CHARS,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "detected_at": rfc3339_ms(detected_at_ms),
    }


def encode(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def decode(data: bytes) -> Any:
    return orjson.loads(data)
