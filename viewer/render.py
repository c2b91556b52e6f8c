"""Show alerts as text: one plain line or one JSON object per change, per case or per window.

Each renderer gets every change of a window (crossed, then closed) from ``viewer.run``. By
default windows are grouped into cases (``viewer.cases``) and a line shows the case; with
``--windows`` a line shows the window, as the topic has it. The live terminal view is in
``viewer.live``. Strings that came from a record are escaped here, at the last step before
output, so no path can print a raw control character from the topic.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TextIO

import orjson

from viewer.alerts import Alert, Evidence
from viewer.cases import Case, CaseBook, CaseChange, CaseStatus
from viewer.escaping import printable, printable_json

# Account ids are at most 64 characters by contract; more than this is a broken or hostile record.
_FIELD_LIMIT = 80
_ID_LIMIT = 2 * _FIELD_LIMIT + 20


def format_instant(stamp: datetime) -> str:
    """A detection time as people compare them: UTC, to the second, ``Z``."""
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_event_time(stamp: datetime) -> str:
    """An event time with its milliseconds: the worker's windows are exact to the millisecond."""
    return stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{stamp.microsecond // 1000:03d}"


def format_window(start: datetime, end: datetime) -> str:
    """``2017-07-23 01:00:00–01:10:00``; the end's date is repeated only when it differs."""
    end_format = "%H:%M:%S" if end.date() == start.date() else "%Y-%m-%d %H:%M:%S"
    return f"{start:%Y-%m-%d %H:%M:%S}–{end.strftime(end_format)}"


def format_money(amount: Decimal) -> str:
    """Dollars with thousands separators and cents: ``$12,000.50``."""
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def format_pair(sender: str, receiver: str) -> str:
    """``66 -> 26``, both ids escaped and bounded."""
    return f"{printable(sender, _FIELD_LIMIT)} -> {printable(receiver, _FIELD_LIMIT)}"


def shown_id(alert_or_case_id: str) -> str:
    """An alert or case id as printed: escaped and bounded."""
    return printable(alert_or_case_id, _ID_LIMIT)


def _pair(alert: Alert) -> str:
    return format_pair(alert.sender, alert.receiver)


def evidence_text(item: Evidence) -> str:
    """One transaction of the evidence: event time, amount, where it is in the input topic."""
    where = ""
    if item.partition is not None:
        where = f"  partition {item.partition}"
        if item.offset is not None:
            where += f" offset {item.offset}"
    return f"{format_event_time(item.event_time)}  {format_money(item.amount):>14}{where}"


def short_location(item: Evidence) -> str:
    """``  p3@1240``: the input partition and offset of a transaction, for narrow columns."""
    if item.partition is None:
        return ""
    return f"  p{item.partition}" + ("" if item.offset is None else f"@{item.offset}")


def _truncation_note(alert: Alert) -> str:
    return f"… {len(alert.transactions)} of {alert.count} transactions listed (evidence capped)"


def evidence_document(item: Evidence) -> dict[str, object]:
    """One transaction of the evidence in the topic's own format."""
    return {
        "event_time": wire_time(item.event_time),
        "amount": str(item.amount),
        "partition": item.partition,
        "offset": item.offset,
    }


def plain_lines(alert: Alert, evidence: bool = False) -> list[str]:
    """The line for one change of an alert, and with ``evidence`` one indented line per tx."""
    lines = [
        f"{format_instant(alert.updated_at)} {alert.status.name} {_pair(alert)}"
        f" window {format_window(alert.window_start, alert.window_end)}"
        f" total {format_money(alert.total)} ({alert.count} tx)"
        f" id={printable(alert.alert_id, _ID_LIMIT)}"
    ]
    if evidence:
        lines.extend(f"    {evidence_text(item)}" for item in alert.transactions)
        if alert.truncated:
            lines.append(f"    {_truncation_note(alert)}")
    return lines


def wire_time(stamp: datetime | None) -> str | None:
    """The topic's own time format, so JSON output reads like the records it came from."""
    if stamp is None:
        return None
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_document(alert: Alert) -> dict[str, object]:
    """The merged alert as a JSON-ready mapping (decimal strings, RFC 3339 UTC times)."""
    return {
        "alert_id": alert.alert_id,
        "status": alert.status.value,
        "sender": alert.sender,
        "receiver": alert.receiver,
        "window_start": wire_time(alert.window_start),
        "window_end": wire_time(alert.window_end),
        "total": str(alert.total),
        "threshold": None if alert.threshold is None else str(alert.threshold),
        "count": alert.count,
        "first_event": wire_time(alert.first_event),
        "last_event": wire_time(alert.last_event),
        "crossed_at": wire_time(alert.crossed_at),
        "closed_at": wire_time(alert.closed_at),
        "transactions": [evidence_document(item) for item in alert.transactions],
        "truncated": alert.truncated,
    }


def json_line(alert: Alert) -> str:
    """One line of JSON for the alert, safe to print (see :func:`printable_json`)."""
    return printable_json(orjson.dumps(alert_document(alert)).decode())


# --- cases ----------------------------------------------------------------------------------


def transaction_count(case: Case) -> str:
    """Distinct transactions of the case; ``100+`` when a window's evidence was capped."""
    return f"{len(case.transactions)}{'+' if case.truncated else ''}"


def case_summary(case: Case) -> str:
    """``total $18,892.01 (largest of 3 windows, 1 closed) 18 tx, events 00:02:11–00:07:40``."""
    windows = len(case.windows)
    closed = "" if case.status is CaseStatus.CONFIRMED else f", {case.closed_windows} closed"
    plural = "window" if windows == 1 else "windows"
    events = ""
    if case.first_event is not None and case.last_event is not None:
        events = f", events {format_window(case.first_event, case.last_event)}"
    return (
        f"total {format_money(case.total)} (largest of {windows} {plural}{closed})"
        f" {transaction_count(case)} tx{events}"
    )


def case_lines(change: CaseChange, evidence: bool = False) -> list[str]:
    """The line for one change of a case, and with ``evidence`` one indented line per tx."""
    case = change.case
    was = "".join(f" (was {shown_id(old)})" for old in change.replaces)
    lines = [
        f"{format_instant(case.updated_at)} {case.status.name:<9}"
        f" {format_pair(case.sender, case.receiver)} {case_summary(case)}"
        f" case={shown_id(case.case_id)}{was}"
    ]
    if evidence:
        lines.extend(f"    {evidence_text(item)}" for item in case.transactions)
        if case.truncated:
            lines.append("    … more transactions than listed (a window's evidence was capped)")
    return lines


def case_document(change: CaseChange) -> dict[str, object]:
    """The case as a JSON-ready mapping; ``total`` is the largest window total."""
    case = change.case
    return {
        "case_id": case.case_id,
        "replaces": list(change.replaces),
        "status": case.status.value,
        "sender": case.sender,
        "receiver": case.receiver,
        "total": str(case.total),
        "windows": len(case.windows),
        "closed_windows": case.closed_windows,
        "alert_ids": list(case.alert_ids),
        "window_start": wire_time(case.window_start),
        "window_end": wire_time(case.window_end),
        "first_event": wire_time(case.first_event),
        "last_event": wire_time(case.last_event),
        "count": len(case.transactions),
        "transactions": [evidence_document(item) for item in case.transactions],
        "truncated": case.truncated,
        "detected_at": wire_time(case.detected_at),
        "confirmed_at": wire_time(case.confirmed_at),
        "updated_at": wire_time(case.updated_at),
    }


def case_json_line(change: CaseChange) -> str:
    """One line of JSON for the case, safe to print."""
    return printable_json(orjson.dumps(case_document(change)).decode())


# --- renderers ------------------------------------------------------------------------------


class AlertRenderer(Protocol):
    """Shows each change of a window; may count dead letters; closed once at the end.

    ``caught_up`` is called once the topic's backlog (what it held when the viewer started)
    has been read: a renderer asked to settle the backlog shows its state then, once.
    """

    def show(self, alert: Alert) -> None: ...

    def dead_letter(self, value: bytes | None) -> None: ...

    def caught_up(self) -> None: ...

    def close(self) -> None: ...


class WindowRenderer:
    """One entry per change of a window, formatted by ``lines`` (plain or JSON).

    With ``backlog``, the windows read before :meth:`caught_up` are shown once each, in their
    latest state and in the order they were detected, instead of one entry per record.
    """

    def __init__(
        self, stream: TextIO, lines: Callable[[Alert], list[str]], *, backlog: bool = False
    ) -> None:
        self._stream = stream
        self._lines = lines
        self._settling: dict[str, Alert] | None = {} if backlog else None

    @classmethod
    def plain(cls, stream: TextIO, evidence: bool = False, backlog: bool = False) -> WindowRenderer:
        return cls(stream, lambda alert: plain_lines(alert, evidence), backlog=backlog)

    @classmethod
    def json(cls, stream: TextIO, backlog: bool = False) -> WindowRenderer:
        return cls(stream, lambda alert: [json_line(alert)], backlog=backlog)

    def show(self, alert: Alert) -> None:
        if self._settling is not None:
            self._settling[alert.alert_id] = alert
        else:
            _write(self._stream, self._lines(alert))

    def dead_letter(self, value: bytes | None) -> None:
        """Plain and JSON output have no footer: dead letters are not shown."""

    def caught_up(self) -> None:
        settled, self._settling = self._settling, None
        if settled:
            first_seen = sorted(settled.values(), key=lambda a: (_detected(a), a.alert_id))
            _write(self._stream, [line for alert in first_seen for line in self._lines(alert)])

    def close(self) -> None:
        self.caught_up()  # stopped inside the backlog (--max-alerts, --timeout): show it
        self._stream.flush()


class CaseRenderer:
    """One entry per change of a case, formatted by ``lines`` (plain or JSON).

    With ``backlog``, the cases built from the records read before :meth:`caught_up` are shown
    once each, as they stand then, in the order they were detected.
    """

    def __init__(
        self, stream: TextIO, lines: Callable[[CaseChange], list[str]], *, backlog: bool = False
    ) -> None:
        self._stream = stream
        self._lines = lines
        self._cases = CaseBook()
        self._settling = backlog

    @classmethod
    def plain(cls, stream: TextIO, evidence: bool = False, backlog: bool = False) -> CaseRenderer:
        return cls(stream, lambda change: case_lines(change, evidence), backlog=backlog)

    @classmethod
    def json(cls, stream: TextIO, backlog: bool = False) -> CaseRenderer:
        return cls(stream, lambda change: [case_json_line(change)], backlog=backlog)

    def show(self, alert: Alert) -> None:
        change = self._cases.apply(alert)
        if not self._settling:
            _write(self._stream, self._lines(change))

    def dead_letter(self, value: bytes | None) -> None:
        """Plain and JSON output have no footer: dead letters are not shown."""

    def caught_up(self) -> None:
        if not self._settling:
            return
        self._settling = False
        cases = sorted(self._cases.cases(), key=lambda case: (case.detected_at, case.case_id))
        _write(self._stream, [line for case in cases for line in self._lines(CaseChange(case))])

    def close(self) -> None:
        self.caught_up()  # stopped inside the backlog (--max-alerts, --timeout): show it
        self._stream.flush()


def _detected(alert: Alert) -> datetime:
    stamp = alert.crossed_at or alert.closed_at
    assert stamp is not None  # every alert has the stamp of the record it came from
    return stamp


class OneCase:
    """Passes on only the windows of the case named ``wanted`` (``--case``) to ``inner``.

    ``wanted`` may be the case id or the alert id of any of its windows. When a window joins
    the case to windows seen before (they were another case until then), those are passed on
    too, so ``inner`` builds the same case.
    """

    def __init__(self, inner: AlertRenderer, wanted: str) -> None:
        self._inner = inner
        self._wanted = wanted
        self._cases = CaseBook()
        self._passed: set[tuple[str, str]] = set()

    def show(self, alert: Alert) -> None:
        case = self._cases.apply(alert).case
        if not case.answers_to(self._wanted):
            return
        # The changed window last, so that the inner renderer's last change shows it.
        others = [window for window in case.windows if window.alert_id != alert.alert_id]
        for window in [*others, alert]:
            state = (window.alert_id, window.status.value)
            if state not in self._passed:
                self._passed.add(state)
                self._inner.show(window)

    def dead_letter(self, value: bytes | None) -> None:
        self._inner.dead_letter(value)

    def caught_up(self) -> None:
        self._inner.caught_up()

    def close(self) -> None:
        self._inner.close()


def _write(stream: TextIO, lines: list[str]) -> None:
    for line in lines:
        stream.write(line + "\n")
    # Flushed per change so `| grep` and `| tee` see each at once.
    stream.flush()
