"""The live terminal view: cases (or windows) newest first, updated in place, and a footer.

Drawn by :class:`rich.live.Live` from its own thread a few times a second; ``show`` and
``dead_letter`` only update the state under a lock. The footer gives the alert rate over the
last minute and the dead letters (all, and late ones) read from the dead-letter topic. With a
focus (``--case``) the view shows that one case in detail: its windows and all its evidence.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from viewer.alerts import Alert, AlertStatus, Evidence
from viewer.cases import Case, CaseBook, CaseStatus
from viewer.render import (
    case_summary,
    format_event_time,
    format_instant,
    format_money,
    format_pair,
    format_window,
    short_location,
    shown_id,
    transaction_count,
)
from viewer.tally import Tally

_EVIDENCE_ROWS = 5
_STYLE = {
    AlertStatus.CROSSED: "bold yellow",
    AlertStatus.CLOSED: "bold red",
    CaseStatus.CROSSED: "bold yellow",
    CaseStatus.CONFIRMED: "bold red",
}
# Title, table header and borders, footer: what a table costs besides its rows.
_CHROME_LINES = 8


@dataclass(frozen=True, slots=True)
class _Column:
    header: str
    justify: JustifyMethod = "left"
    # On a narrow screen the columns with the highest number go first; 0 always stays.
    drop: int = 0
    # Folded over several lines rather than cut, when even the kept columns are too wide.
    fold: bool = False


_CASE_COLUMNS = (
    _Column("detected (UTC)", drop=4),
    _Column("status"),
    _Column("pair", fold=True),
    _Column("total", justify="right"),
    _Column("windows", drop=1),
    _Column("tx", justify="right", drop=3),
    _Column("events (UTC)", drop=2),
    _Column("case", fold=True),
)
_WINDOW_COLUMNS = (
    _Column("detected (UTC)", drop=3),
    _Column("status"),
    _Column("pair", fold=True),
    _Column("window (UTC)", drop=1),
    _Column("total", justify="right"),
    _Column("tx", justify="right", drop=2),
    _Column("alert id", fold=True),
)


def _fitting(columns: Sequence[_Column], rows: list[list[Text]], width: int) -> list[int]:
    """Indexes of the columns to draw: all that fit in ``width``, dropping the least needed."""

    def cell_width(cell: Text) -> int:
        return max(cell_len(line) for line in cell.plain.split("\n"))

    widths = [
        max([cell_len(column.header), *(cell_width(cells[index]) for cells in rows)])
        for index, column in enumerate(columns)
    ]
    kept = list(range(len(columns)))
    droppable = sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: -columns[i].drop)
    for index in droppable:
        # Each column costs its width plus a border and two spaces of padding.
        if sum(widths[i] + 3 for i in kept) + 1 <= width:
            break
        kept.remove(index)
    return kept


class LiveRenderer:
    """A live view on a terminal: newest first, each row updated in place.

    Only what fits on the screen is drawn; the renderer keeps the last ``keep`` cases (or
    windows) so a resized window can show more. Warnings written to ``sys.stderr`` meanwhile
    appear above the view when stderr is the terminal too, because :class:`Live` redirects it.
    """

    def __init__(
        self,
        console: Console,
        *,
        title: str,
        evidence: bool = False,
        windows: bool = False,
        focus: str | None = None,
        keys: bool = False,
        tally: Tally | None = None,
        keep: int = 500,
        start: bool = True,
    ) -> None:
        self._console = console
        self._title = title
        self._evidence = evidence
        self._windows = windows
        self._focus = focus
        self._keys = keys
        self._tally = Tally() if tally is None else tally
        self._keep = keep
        self._cases = CaseBook(capacity=keep)
        self._alerts: OrderedDict[str, Alert] = OrderedDict()
        # Live draws from its own thread while show() runs on the event loop.
        self._lock = threading.Lock()
        self._live = Live(
            console=console,
            # Drawn on Live's refresh, not on every alert: reading a backlog with
            # --from-beginning would otherwise build a table per record.
            get_renderable=self.renderable,
            auto_refresh=True,
            refresh_per_second=4,
            # Warnings on a terminal go above the view instead of tearing it; stderr sent to
            # a file (2>log) stays there instead of landing in the view's stream.
            redirect_stderr=sys.stderr.isatty(),
        )
        if start:
            self._live.start()

    def show(self, alert: Alert) -> None:
        with self._lock:
            self._tally.alert(alert)
            self._cases.apply(alert)
            # Assigning an existing key keeps its place: a row that closes stays where it was.
            self._alerts[alert.alert_id] = alert
            while len(self._alerts) > self._keep:
                self._alerts.popitem(last=False)

    def dead_letter(self, value: bytes | None) -> None:
        with self._lock:
            self._tally.dead_letter(value)

    def caught_up(self) -> None:
        """The view shows the current state all along: nothing to settle."""

    def toggle_evidence(self) -> None:
        """The ``e`` key: show or hide the transactions under each row."""
        with self._lock:
            self._evidence = not self._evidence
        if self._live.is_started:
            self._live.refresh()  # at once, not at the next tick

    def close(self) -> None:
        # Draws the final state once more, so it stays on screen after the viewer ends.
        self._live.stop()

    def renderable(self) -> RenderableType:
        """The view as it would be drawn now (public so tests can print it)."""
        with self._lock:
            if self._focus is not None:
                body = self._detail(self._focus)
            elif self._windows:
                body = self._window_table()
            else:
                body = self._case_table()
            return Group(body, self._footer())

    # --- cases ---------------------------------------------------------------------------

    def _case_table(self) -> RenderableType:
        newest_first = sorted(
            self._cases.cases(), key=lambda case: (case.detected_at, case.case_id), reverse=True
        )
        rows = self._visible(self._case_cells(case) for case in newest_first)
        return self._table(_CASE_COLUMNS, rows)

    def _case_cells(self, case: Case) -> list[Text]:
        pair = Text(format_pair(case.sender, case.receiver))
        if self._evidence:
            pair.append(_evidence_lines(case.transactions, len(case.transactions)), style="dim")
        windows = str(len(case.windows))
        if case.status is CaseStatus.CROSSED:
            windows += f", {case.closed_windows} closed"
        events = ""
        if case.first_event is not None and case.last_event is not None:
            events = format_window(case.first_event, case.last_event)
        return [
            Text(format_instant(case.detected_at)),
            Text(case.status.name, style=_STYLE[case.status]),
            pair,
            Text(format_money(case.total)),
            Text(windows),
            Text(transaction_count(case)),
            Text(events),
            Text(shown_id(case.case_id)),
        ]

    def _detail(self, wanted: str) -> RenderableType:
        case = next((case for case in self._cases.cases() if case.answers_to(wanted)), None)
        title = Text(self._title, style="bold")
        if case is None:
            return Group(title, Text(f"waiting for case {shown_id(wanted)}…"))
        header = Text.assemble(
            ("case ", "bold"),
            shown_id(case.case_id),
            "  ",
            format_pair(case.sender, case.receiver),
            "  ",
            (case.status.name, _STYLE[case.status]),
            "  ",
            case_summary(case),
        )
        windows = Table(title="windows", title_justify="left", expand=False)
        for name in ("alert id", "window (UTC)", "status", "total", "tx"):
            windows.add_column(name, no_wrap=name != "alert id", overflow="fold")
        for window in case.windows:
            windows.add_row(
                shown_id(window.alert_id),
                format_window(window.window_start, window.window_end),
                Text(window.status.name, style=_STYLE[window.status]),
                format_money(window.total),
                str(window.count),
            )
        evidence = Table(title="evidence", title_justify="left", expand=False)
        evidence.add_column("event time (UTC)", no_wrap=True)
        evidence.add_column("amount", justify="right", no_wrap=True)
        evidence.add_column("partition", justify="right")
        evidence.add_column("offset", justify="right")
        budget = self._console.size.height - len(case.windows) - 2 * _CHROME_LINES
        shown = case.transactions[: max(budget, 1)]
        for item in shown:
            evidence.add_row(
                format_event_time(item.event_time),
                format_money(item.amount),
                "" if item.partition is None else str(item.partition),
                "" if item.offset is None else str(item.offset),
            )
        hidden = len(case.transactions) - len(shown)
        more = [Text(f"… {hidden} more (--plain --case ID --evidence lists all)")] if hidden else []
        return Group(title, header, windows, evidence, *more)

    # --- windows -------------------------------------------------------------------------

    def _window_table(self) -> RenderableType:
        rows = self._visible(self._window_cells(alert) for alert in reversed(self._alerts.values()))
        return self._table(_WINDOW_COLUMNS, rows)

    def _window_cells(self, alert: Alert) -> list[Text]:
        pair = Text(format_pair(alert.sender, alert.receiver))
        if self._evidence:
            pair.append(_evidence_lines(alert.transactions, alert.count), style="dim")
        return [
            Text(format_instant(alert.updated_at)),
            Text(alert.status.name, style=_STYLE[alert.status]),
            pair,
            Text(format_window(alert.window_start, alert.window_end)),
            Text(format_money(alert.total)),
            Text(str(alert.count)),
            Text(shown_id(alert.alert_id)),
        ]

    # --- shared --------------------------------------------------------------------------

    def _visible(self, rows: Iterable[list[Text]]) -> list[list[Text]]:
        """The first rows, as many as fit on the screen."""
        budget = max(self._console.size.height - _CHROME_LINES, 1)
        shown = []
        for cells in rows:
            height = max(cell.plain.count("\n") + 1 for cell in cells)
            if height > budget:
                break
            budget -= height
            shown.append(cells)
        return shown

    def _table(self, columns: Sequence[_Column], rows: list[list[Text]]) -> RenderableType:
        """A table of ``rows`` without the columns that the screen's width cannot hold."""
        kept = _fitting(columns, rows, self._console.size.width)
        table = Table(title=Text(self._title, style="bold"), expand=False)
        for index in kept:
            column = columns[index]
            table.add_column(
                column.header,
                justify=column.justify,
                no_wrap=not column.fold,
                overflow="fold" if column.fold else "ellipsis",
            )
        for cells in rows:
            table.add_row(*(cells[index] for index in kept))
        if not rows:
            return Group(table, Text("waiting for alerts…"))
        return table

    def _footer(self) -> Text:
        tally = self._tally
        if self._windows:
            closed = sum(alert.status is AlertStatus.CLOSED for alert in self._alerts.values())
            shown = f"{_plural(len(self._alerts), 'window')}, {closed} closed"
        else:
            cases = self._cases.cases()
            confirmed = sum(case.status is CaseStatus.CONFIRMED for case in cases)
            shown = f"{_plural(len(cases), 'case')}, {confirmed} confirmed"
        parts = [
            shown,
            f"{tally.alerts_per_minute()} alerts/min",
            f"DLQ {tally.dead_letters:,} (late {tally.late:,})",
            "newest first",
        ]
        if self._keys:
            parts.append("e evidence · q quit")
        else:
            parts.append("Ctrl-C quits")
        return Text(" · ".join(parts), style="dim")


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _evidence_lines(transactions: tuple[Evidence, ...], count: int) -> str:
    """Up to five transactions, compact (the row already gives the date), and how many more."""
    shown = transactions[:_EVIDENCE_ROWS]
    lines = [
        f"{item.event_time:%H:%M:%S}  {format_money(item.amount)}{short_location(item)}"
        for item in shown
    ]
    hidden = count - len(shown)
    if hidden > 0:
        lines.append(f"… {hidden} more")
    return "\n" + "\n".join(lines) if lines else ""
