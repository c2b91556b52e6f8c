"""Alert records from the ``fraud`` topic: parse one record, merge the two kinds by ``alert_id``.

Pure logic, no I/O. The worker writes a ``threshold_crossed`` record as soon as a window's running
total exceeds the threshold and a ``window_closed`` record with the final total when the window
closes; delivery is at-least-once, so either may arrive more than once. :class:`AlertBook` turns
that stream into one :class:`Alert` per ``alert_id`` whose status only moves crossed -> closed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

import orjson

from viewer.errors import BadRecord
from viewer.escaping import printable

SCHEMA_VERSION = 1
"""The record schema this viewer reads (``schema`` field of every record)."""


class AlertKind(StrEnum):
    """The ``kind`` of a record on the topic."""

    THRESHOLD_CROSSED = "threshold_crossed"
    WINDOW_CLOSED = "window_closed"


class AlertStatus(StrEnum):
    """Where a merged alert stands: its window is still open, or it closed above the threshold."""

    CROSSED = "crossed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One transaction that counted towards the window, and where it sits in the input topic."""

    event_time: datetime
    amount: Decimal
    partition: int | None
    offset: int | None


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One validated record of the topic, either kind."""

    alert_id: str
    kind: AlertKind
    sender: str
    receiver: str
    window_start: datetime
    window_end: datetime
    total: Decimal
    threshold: Decimal | None
    count: int
    first_event: datetime | None
    last_event: datetime | None
    transactions: tuple[Evidence, ...]
    truncated: bool
    detected_at: datetime


@dataclass(frozen=True, slots=True)
class Alert:
    """One flagged (pair, window): the records of one ``alert_id`` merged.

    Totals, count and evidence are the closed record's once it arrived (the final ones), the
    crossed record's before. ``crossed_at``/``closed_at`` are the worker's detection times.
    """

    alert_id: str
    status: AlertStatus
    sender: str
    receiver: str
    window_start: datetime
    window_end: datetime
    total: Decimal
    threshold: Decimal | None
    count: int
    first_event: datetime | None
    last_event: datetime | None
    transactions: tuple[Evidence, ...]
    truncated: bool
    crossed_at: datetime | None
    closed_at: datetime | None

    @property
    def updated_at(self) -> datetime:
        """Detection time of the record that gave the alert its current status."""
        stamp = self.closed_at if self.status is AlertStatus.CLOSED else self.crossed_at
        # Every alert is built from a record that set the stamp of its own status.
        assert stamp is not None
        return stamp

    @classmethod
    def from_record(cls, record: AlertRecord, crossed_at: datetime | None = None) -> Alert:
        closed = record.kind is AlertKind.WINDOW_CLOSED
        return cls(
            alert_id=record.alert_id,
            status=AlertStatus.CLOSED if closed else AlertStatus.CROSSED,
            sender=record.sender,
            receiver=record.receiver,
            window_start=record.window_start,
            window_end=record.window_end,
            total=record.total,
            threshold=record.threshold,
            count=record.count,
            first_event=record.first_event,
            last_event=record.last_event,
            transactions=record.transactions,
            truncated=record.truncated,
            crossed_at=crossed_at if closed else record.detected_at,
            closed_at=record.detected_at if closed else None,
        )


class AlertBook:
    """The alerts seen so far, keyed by ``alert_id``; :meth:`apply` says what changed.

    The book remembers at most ``capacity`` alerts (least recently changed go first) so a viewer
    left running for weeks stays bounded; a duplicate of a forgotten alert would show again,
    which is why the default is far above what one screen or one burst holds.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._alerts: OrderedDict[str, Alert] = OrderedDict()
        self._distinct = 0

    def __len__(self) -> int:
        return len(self._alerts)

    def get(self, alert_id: str) -> Alert | None:
        return self._alerts.get(alert_id)

    @property
    def distinct(self) -> int:
        """How many different alerts have been shown since the start (forgotten ones included)."""
        return self._distinct

    def apply(self, record: AlertRecord) -> Alert | None:
        """Merge ``record``; return the alert if what a reader sees changed, else ``None``.

        Nothing changes for a duplicate (an ``(alert_id, kind)`` already seen) nor for a crossed
        record arriving after the closed one: the status never goes back.
        """
        known = self._alerts.get(record.alert_id)
        if record.kind is AlertKind.THRESHOLD_CROSSED:
            if known is not None:
                return None
            alert = Alert.from_record(record)
            self._distinct += 1
        else:
            if known is not None and known.status is AlertStatus.CLOSED:
                return None
            if known is None:
                self._distinct += 1
            alert = Alert.from_record(record, crossed_at=known.crossed_at if known else None)
        self._alerts[alert.alert_id] = alert
        self._alerts.move_to_end(alert.alert_id)
        if len(self._alerts) > self._capacity:
            self._alerts.popitem(last=False)
        return alert


# --- parsing ---------------------------------------------------------------------------------


def parse_record(value: bytes) -> AlertRecord:
    """Validate one record value; raise :class:`BadRecord` with a one-line reason otherwise.

    Unknown fields are ignored so the worker can add fields without breaking older viewers.
    """
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as err:
        raise BadRecord(f"not valid JSON ({err})") from None
    if not isinstance(document, dict):
        raise BadRecord(f"not a JSON object but {_json_type(document)}")
    schema = document.get("schema")
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
        raise BadRecord(
            f"unsupported schema {_shown(schema)} (this viewer reads schema {SCHEMA_VERSION})"
        )
    kind_name = _string(document, "kind")
    try:
        kind = AlertKind(kind_name)
    except ValueError:
        raise BadRecord(f"unknown kind {_shown(kind_name)}") from None
    return AlertRecord(
        alert_id=_string(document, "alert_id"),
        kind=kind,
        sender=_string(document, "sender"),
        receiver=_string(document, "receiver"),
        window_start=_instant(document, "window_start"),
        window_end=_instant(document, "window_end"),
        total=_decimal(document, "total"),
        threshold=_maybe_decimal(document, "threshold"),
        count=_count(document, "count"),
        first_event=_maybe_instant(document, "first_event"),
        last_event=_maybe_instant(document, "last_event"),
        transactions=_evidence(document.get("transactions")),
        truncated=_flag(document, "truncated"),
        detected_at=_instant(document, "detected_at"),
    )


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _shown(value: object) -> str:
    """A record value quoted for an error message: bounded, escaped."""
    return printable(repr(value), limit=60)


def _required(document: Mapping[str, object], field: str) -> object:
    value = document.get(field)
    if value is None:
        raise BadRecord(f"missing field {field!r}")
    return value


def _string(document: Mapping[str, object], field: str) -> str:
    value = _required(document, field)
    if not isinstance(value, str) or not value:
        raise BadRecord(f"field {field!r} must be a non-empty string, got {_shown(value)}")
    return value


def _instant(document: Mapping[str, object], field: str) -> datetime:
    return _parse_instant(_required(document, field), field)


def _maybe_instant(document: Mapping[str, object], field: str) -> datetime | None:
    value = document.get(field)
    return None if value is None else _parse_instant(value, field)


def _parse_instant(value: object, field: str) -> datetime:
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            # A stamp without a zone would be read in the viewer's local time: refuse to guess.
            if stamp.tzinfo is not None:
                return stamp.astimezone(UTC)
    raise BadRecord(f"field {field!r} must be an RFC 3339 time with a zone, got {_shown(value)}")


def _decimal(document: Mapping[str, object], field: str) -> Decimal:
    return _parse_decimal(_required(document, field), field)


def _maybe_decimal(document: Mapping[str, object], field: str) -> Decimal | None:
    value = document.get(field)
    return None if value is None else _parse_decimal(value, field)


def _parse_decimal(value: object, field: str) -> Decimal:
    # Money is a decimal string on the wire; a JSON float would already have lost cents.
    if isinstance(value, str | int) and not isinstance(value, bool):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            pass
        else:
            if amount.is_finite():
                return amount
    raise BadRecord(f"field {field!r} must be a decimal string, got {_shown(value)}")


def _count(document: Mapping[str, object], field: str) -> int:
    value = _required(document, field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRecord(f"field {field!r} must be a non-negative integer, got {_shown(value)}")
    return value


def _flag(document: Mapping[str, object], field: str) -> bool:
    value = document.get(field, False)
    if not isinstance(value, bool):
        raise BadRecord(f"field {field!r} must be true or false, got {_shown(value)}")
    return value


def _optional_int(item: Mapping[str, object], field: str) -> int | None:
    value = item.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRecord(f"transactions[].{field} must be a non-negative integer")
    return value


def _evidence(value: object) -> tuple[Evidence, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadRecord(f"field 'transactions' must be an array, got {_json_type(value)}")
    evidence = []
    for item in value:
        if not isinstance(item, dict):
            raise BadRecord(f"transactions[] must hold objects, got {_json_type(item)}")
        if item.get("event_time") is None or item.get("amount") is None:
            raise BadRecord("transactions[] needs 'event_time' and 'amount'")
        evidence.append(
            Evidence(
                event_time=_parse_instant(item["event_time"], "transactions[].event_time"),
                amount=_parse_decimal(item["amount"], "transactions[].amount"),
                partition=_optional_int(item, "partition"),
                offset=_optional_int(item, "offset"),
            )
        )
    return tuple(evidence)
