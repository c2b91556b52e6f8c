"""The live terminal view (viewer.live), printed on rich's recording console.

The same view on a real terminal, against the real broker, is tested in
tests/integration/test_viewer_terminal.py (tmux).
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from tests.viewer.records import MINUTE_MS, T0_MS, alert_record, encoded, window_record
from viewer.alerts import Alert, AlertBook, parse_record
from viewer.live import LiveRenderer
from viewer.tally import Tally

NOW = datetime(2026, 11, 28, 13, 0, 30, tzinfo=UTC).timestamp()
HOSTILE = "a\x1b[31m\x07\x9b\u202e\nz"


def minute(offset: float) -> int:
    return T0_MS + round(offset * MINUTE_MS)


def changes(*records: dict[str, Any]) -> list[Alert]:
    book = AlertBook()
    found = [book.apply(parse_record(encoded(record))) for record in records]
    return [alert for alert in found if alert is not None]


def screen(renderer: LiveRenderer, console: Console) -> str:
    console.print(renderer.renderable())
    return console.export_text()


@pytest.fixture
def console() -> Console:
    return Console(file=io.StringIO(), width=200, height=40, record=True)


@pytest.fixture
def live(console: Console) -> Iterator[LiveRenderer]:
    renderer = LiveRenderer(
        console, title="fraud alerts", tally=Tally(now=lambda: NOW), start=False
    )
    yield renderer
    renderer.close()


def burst(sender: str, receiver: str, *, closed: int, detected_at: str) -> list[dict[str, Any]]:
    """Three windows of one burst of a pair (minutes 3..7 after T0), ``closed`` of them closed."""
    transfers = [(minute(3), "4000", 1, 5), (minute(5), "3500", 1, 6), (minute(7), "4500", 1, 7)]
    records = []
    for number, start in enumerate((-2, 0, 2)):
        for kind, total in (("threshold_crossed", "11500.00"), ("window_closed", "12000.00")):
            if kind == "window_closed" and number >= closed:
                continue
            records.append(
                window_record(
                    kind,
                    minute(start),
                    total,
                    transfers,
                    sender=sender,
                    receiver=receiver,
                    detected_at=detected_at,
                )
            )
    return records


def test_cases_newest_first_with_status_total_windows_and_footer(
    live: LiveRenderer, console: Console
) -> None:
    for alert in changes(*burst("66", "26", closed=3, detected_at="2026-11-28T12:59:00.000Z")):
        live.show(alert)
    for alert in changes(*burst("7", "8", closed=1, detected_at="2026-11-28T13:00:10.000Z")):
        live.show(alert)
    for value in (b'{"reason": "late"}', b'{"reason": "late"}', b'{"reason": "bad_amount"}'):
        live.dead_letter(value)

    text = screen(live, console)

    rows = [line for line in text.splitlines() if " -> " in line]
    assert len(rows) == 2
    assert "7 -> 8" in rows[0] and "66 -> 26" in rows[1]  # newest case on top
    assert "CROSSED" in rows[0] and "3, 1 closed" in rows[0]
    assert "CONFIRMED" in rows[1]
    assert "$12,000.00" in rows[1]  # the largest window, not three windows added up
    assert "2017-07-23 01:03:00–01:07:00" in rows[1]
    assert f"66:26:{minute(-2)}" in rows[1]
    # 3 windows of 7 -> 8 were detected 20 s ago; those of 66 -> 26 90 s ago.
    assert "2 cases, 1 confirmed · 3 alerts/min · DLQ 3 (late 2) · newest first" in text
    assert "Ctrl-C quits" in text


def test_evidence_is_shown_on_demand_and_toggled(live: LiveRenderer, console: Console) -> None:
    for alert in changes(*burst("66", "26", closed=0, detected_at="2026-11-28T13:00:00Z")):
        live.show(alert)

    assert "01:03:00  $4,000.00  p1@5" not in screen(live, console)
    live.toggle_evidence()
    shown = screen(live, console)
    assert "01:03:00  $4,000.00  p1@5" in shown
    assert "01:07:00  $4,500.00  p1@7" in shown
    live.toggle_evidence()
    assert "01:03:00  $4,000.00  p1@5" not in screen(live, console)


def test_a_focused_case_shows_its_windows_and_all_its_evidence(console: Console) -> None:
    focused = LiveRenderer(console, title="fraud alerts", focus=f"66:26:{minute(0)}", start=False)
    try:
        assert f"waiting for case 66:26:{minute(0)}" in screen(focused, console)
        for alert in changes(*burst("66", "26", closed=2, detected_at="2026-11-28T13:00:00Z")):
            focused.show(alert)
        for alert in changes(*burst("7", "8", closed=0, detected_at="2026-11-28T13:00:00Z")):
            focused.show(alert)
        text = screen(focused, console)
    finally:
        focused.close()

    assert f"case 66:26:{minute(-2)}  66 -> 26  CROSSED  total $12,000.00" in text
    assert "7 -> 8" not in text
    windows = [line for line in text.splitlines() if "66:26:" in line and "│" in line]
    assert len(windows) == 3
    assert sum("CLOSED" in line for line in windows) == 2
    assert "│ 2017-07-23 01:05:00.000 │ $3,500.00 │         1 │      6 │" in text


def test_windows_mode_shows_each_window_once_newest_first(console: Console) -> None:
    renderer = LiveRenderer(console, title="fraud alerts", windows=True, evidence=True)
    older, other = "66:26:1500771480000", "7:8:1500771600000"
    try:
        records = [
            alert_record("threshold_crossed", alert_id=older),
            alert_record("window_closed", alert_id=older),
        ]
        for alert in changes(*records):
            renderer.show(alert)
        for alert in changes(alert_record(alert_id=other, sender="7", receiver="8")):
            renderer.show(alert)
        console.export_text()  # drop what Live itself drew so far
        text = screen(renderer, console)
    finally:
        renderer.close()

    assert text.count(older) == 1
    assert text.index(other) < text.index(older)
    assert "CLOSED" in text and "CROSSED" in text
    assert "$12,000.50" in text
    assert "01:01:02  $1,500.00  p3@1234" in text
    assert "2 windows, 1 closed" in text


@pytest.mark.parametrize("windows", [False, True])
def test_control_characters_and_markup_from_records_are_shown_as_text(
    console: Console, windows: bool
) -> None:
    renderer = LiveRenderer(console, title="fraud alerts", windows=windows, start=False)
    for alert in changes(alert_record(sender=HOSTILE, receiver="[bold]x[/bold]")):
        renderer.show(alert)

    text = screen(renderer, console)

    unsafe = [c for c in text.replace("\n", "") if unicodedata.category(c) in {"Cc", "Cf"}]
    assert unsafe == []
    assert "\\x1b[31m" in text
    assert "[bold]x[/bold]" in text  # shown as text, not taken as rich markup


@pytest.mark.parametrize("windows", [False, True])
def test_only_what_fits_on_the_screen_is_drawn(windows: bool) -> None:
    console = Console(file=io.StringIO(), width=200, height=12, record=True)
    renderer = LiveRenderer(console, title="fraud alerts", windows=windows, start=False)
    for number in range(30):
        record = alert_record(alert_id=f"66:26:{number:013d}", sender=f"s{number}")
        for alert in changes(record):
            renderer.show(alert)

    text = screen(renderer, console)

    assert f"66:26:{29:013d}" in text
    assert f"66:26:{0:013d}" not in text
    assert ("30 windows, 0 closed" if windows else "30 cases, 0 confirmed") in text


def test_the_footer_names_the_keys_when_they_are_read(console: Console) -> None:
    renderer = LiveRenderer(console, title="fraud alerts", keys=True, start=False)

    text = screen(renderer, console)

    assert "waiting for alerts…" in text
    assert "e evidence · q quit" in text


def headers(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if "status" in line)
    return [name.strip() for name in line.strip("┃ ").split("┃")]


def test_a_narrow_screen_drops_the_least_needed_columns_first() -> None:
    wide = Console(file=io.StringIO(), width=160, height=40, record=True)
    narrow = Console(file=io.StringIO(), width=80, height=40, record=True)
    shown = {}
    for name, console in (("wide", wide), ("narrow", narrow)):
        renderer = LiveRenderer(console, title="fraud alerts", start=False)
        for alert in changes(*burst("90000", "90001", closed=1, detected_at="2026-11-28T13:00Z")):
            renderer.show(alert)
        shown[name] = screen(renderer, console)

    assert headers(shown["wide"]) == [
        "detected (UTC)",
        "status",
        "pair",
        "total",
        "windows",
        "tx",
        "events (UTC)",
        "case",
    ]
    assert headers(shown["narrow"]) == ["status", "pair", "total", "case"]
    row = next(line for line in shown["narrow"].splitlines() if "90000 -> 90001" in line)
    assert f"90000:90001:{minute(-2)}" in row  # the id that --case takes is never cut
    assert all(len(line) <= 80 for line in shown["narrow"].splitlines())
