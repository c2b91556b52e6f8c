"""Show alerts: plain lines for pipes, JSON lines for programs, a live table on a terminal.

Each renderer gets every change of an alert (crossed, then closed) from ``viewer.run``. Strings
that came from a record are escaped here, at the last step before output, so no path can print
a raw control character from the topic.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TextIO

import orjson
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from viewer.alerts import Alert, AlertStatus, Evidence
from viewer.escaping import printable, printable_json

# Account ids are at most 64 characters by contract; more than this is a broken or hostile record.
_FIELD_LIMIT = 80
_ID_LIMIT = 2 * _FIELD_LIMIT + 20
_LIVE_EVIDENCE_ROWS = 5


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


def _pair(alert: Alert) -> str:
    sender = printable(alert.sender, _FIELD_LIMIT)
    receiver = printable(alert.receiver, _FIELD_LIMIT)
    return f"{sender} -> {receiver}"


def _evidence_text(item: Evidence) -> str:
    where = ""
    if item.partition is not None:
        where = f"  partition {item.partition}"
        if item.offset is not None:
            where += f" offset {item.offset}"
    return f"{format_event_time(item.event_time)}  {format_money(item.amount):>14}{where}"


def _short_location(item: Evidence) -> str:
    if item.partition is None:
        return ""
    return f"  p{item.partition}" + ("" if item.offset is None else f"@{item.offset}")


def _truncation_note(alert: Alert) -> str:
    return f"… {len(alert.transactions)} of {alert.count} transactions listed (evidence capped)"


def plain_lines(alert: Alert, evidence: bool = False) -> list[str]:
    """The line for one change of an alert, and with ``evidence`` one indented line per tx."""
    lines = [
        f"{format_instant(alert.updated_at)} {alert.status.name} {_pair(alert)}"
        f" window {format_window(alert.window_start, alert.window_end)}"
        f" total {format_money(alert.total)} ({alert.count} tx)"
        f" id={printable(alert.alert_id, _ID_LIMIT)}"
    ]
    if evidence:
        lines.extend(f"    {_evidence_text(item)}" for item in alert.transactions)
        if alert.truncated:
            lines.append(f"    {_truncation_note(alert)}")
    return lines


def _wire_time(stamp: datetime | None) -> str | None:
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
        "window_start": _wire_time(alert.window_start),
        "window_end": _wire_time(alert.window_end),
        "total": str(alert.total),
        "threshold": None if alert.threshold is None else str(alert.threshold),
        "count": alert.count,
        "first_event": _wire_time(alert.first_event),
        "last_event": _wire_time(alert.last_event),
        "crossed_at": _wire_time(alert.crossed_at),
        "closed_at": _wire_time(alert.closed_at),
        "transactions": [
            {
                "event_time": _wire_time(item.event_time),
                "amount": str(item.amount),
                "partition": item.partition,
                "offset": item.offset,
            }
            for item in alert.transactions
        ],
        "truncated": alert.truncated,
    }


def json_line(alert: Alert) -> str:
    """One line of JSON for the alert, safe to print (see :func:`printable_json`)."""
    return printable_json(orjson.dumps(alert_document(alert)).decode())


class AlertRenderer(Protocol):
    """Something that shows each change of an alert; closed once when the viewer stops."""

    def show(self, alert: Alert) -> None: ...

    def close(self) -> None: ...


class PlainRenderer:
    """Plain lines, flushed per alert so ``| grep`` and ``| tee`` see them at once."""

    def __init__(self, stream: TextIO, evidence: bool = False) -> None:
        self._stream = stream
        self._evidence = evidence

    def show(self, alert: Alert) -> None:
        for line in plain_lines(alert, self._evidence):
            self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


class JsonRenderer:
    """One merged JSON object per line per change, evidence always included."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def show(self, alert: Alert) -> None:
        self._stream.write(json_line(alert) + "\n")
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


_STATUS_STYLE = {AlertStatus.CROSSED: "bold yellow", AlertStatus.CLOSED: "bold red"}


class LiveRenderer:
    """A live table on a terminal: newest alerts on top, each row updated in place on close.

    Only what fits on the screen is drawn; the renderer keeps the last ``keep`` alerts so a
    resized window can show more. Warnings written to ``sys.stderr`` meanwhile appear above the
    table when stderr is the terminal too, because :class:`rich.live.Live` redirects it.
    """

    def __init__(
        self, console: Console, *, title: str, evidence: bool = False, keep: int = 500
    ) -> None:
        self._console = console
        self._title = title
        self._evidence = evidence
        self._keep = keep
        self._alerts: OrderedDict[str, Alert] = OrderedDict()
        # Live draws from its own thread (4 times a second) while show() runs on the event loop.
        self._lock = threading.Lock()
        self._live = Live(
            console=console,
            # Drawn on Live's refresh, not on every alert: reading a backlog with
            # --from-beginning would otherwise build a table per record.
            get_renderable=self.renderable,
            auto_refresh=True,
            refresh_per_second=4,
            # Warnings on a terminal go above the table instead of tearing it; stderr sent to
            # a file (2>log) stays there instead of landing in the table's stream.
            redirect_stderr=sys.stderr.isatty(),
        )
        self._live.start()

    def show(self, alert: Alert) -> None:
        with self._lock:
            # Assigning an existing key keeps its place: a row that closes stays where it was.
            self._alerts[alert.alert_id] = alert
            while len(self._alerts) > self._keep:
                self._alerts.popitem(last=False)

    def close(self) -> None:
        # Draws the final state once more, so it stays on screen after the viewer ends.
        self._live.stop()

    def renderable(self) -> RenderableType:
        """The table as it would be drawn now (public so tests can print it)."""
        with self._lock:
            alerts = list(self._alerts.values())
        closed = sum(alert.status is AlertStatus.CLOSED for alert in alerts)
        table = Table(
            title=Text(self._title, style="bold"),
            caption=f"{len(alerts)} alerts, {closed} closed · newest first · Ctrl-C quits",
            expand=False,
        )
        table.add_column("detected (UTC)", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("pair", overflow="fold")
        table.add_column("window (UTC)", no_wrap=True)
        table.add_column("total", justify="right", no_wrap=True)
        table.add_column("tx", justify="right")
        table.add_column("alert id", overflow="fold")
        # Header, borders, title and caption take about eight lines.
        budget = max(self._console.size.height - 8, 1)
        for alert in reversed(alerts):
            cells = self._cells(alert)
            height = max(cell.plain.count("\n") + 1 for cell in cells)
            if height > budget:
                break
            budget -= height
            table.add_row(*cells)
        return Group(table) if table.row_count else Group(table, Text("waiting for alerts…"))

    def _cells(self, alert: Alert) -> list[Text]:
        pair = Text(_pair(alert))
        if self._evidence and alert.transactions:
            shown = alert.transactions[:_LIVE_EVIDENCE_ROWS]
            # Compact: the window column already gives the date.
            lines = [
                f"{item.event_time:%H:%M:%S}  {format_money(item.amount)}{_short_location(item)}"
                for item in shown
            ]
            hidden = alert.count - len(shown)
            if hidden > 0:
                lines.append(f"… {hidden} more")
            pair.append("\n" + "\n".join(lines), style="dim")
        return [
            Text(format_instant(alert.updated_at)),
            Text(alert.status.name, style=_STATUS_STYLE[alert.status]),
            pair,
            Text(format_window(alert.window_start, alert.window_end)),
            Text(format_money(alert.total)),
            Text(str(alert.count)),
            Text(printable(alert.alert_id, _ID_LIMIT)),
        ]
