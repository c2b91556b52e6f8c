"""Cases (viewer.cases) and their plain and JSON lines (viewer.render).

Windows are 10 minutes sliding by 2; times are minutes after T0 = 2017-07-23 01:00 UTC.
"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import orjson
import pytest

from tests.viewer.records import MINUTE_MS, T0_MS, encoded, window_record
from viewer.alerts import Alert, AlertBook, parse_record
from viewer.cases import CaseBook, CaseChange, CaseStatus
from viewer.render import CaseRenderer, OneCase, WindowRenderer, case_document, case_lines


def minute(offset: float) -> int:
    return T0_MS + round(offset * MINUTE_MS)


# The burst: four transfers at minutes 3, 4, 5 and 7 on input partition 2.
BURST = [
    (minute(3), "4000", 2, 10),
    (minute(4), "3000", 2, 11),
    (minute(5), "3500", 2, 12),
    (minute(7), "2000", 2, 13),
]


def window(kind: str, start_minute: int, total: str, **overrides: Any) -> dict[str, Any]:
    """The window starting at ``start_minute`` holding the burst's transfers inside it."""
    start = minute(start_minute)
    inside = [tx for tx in BURST if start <= tx[0] < start + 10 * MINUTE_MS]
    transactions = overrides.pop("transactions", inside)
    return window_record(kind, start, total, transactions, **overrides)


class Book:
    """AlertBook then CaseBook, as the renderers use them; keeps every change."""

    def __init__(self) -> None:
        self.alerts = AlertBook()
        self.cases = CaseBook()
        self.changes: list[CaseChange] = []
        self.windows: list[Alert] = []

    def feed(self, *records: dict[str, Any]) -> CaseChange:
        for record in records:
            alert = self.alerts.apply(parse_record(encoded(record)))
            if alert is not None:
                self.windows.append(alert)
                self.changes.append(self.cases.apply(alert))
        return self.changes[-1]


def test_overlapping_windows_of_one_burst_are_one_case_with_the_largest_total() -> None:
    #   minutes   -2    0    2    4    6    8   10   12
    #   burst                 3  4  5    7
    #   w(-2)     [─────────────────────────)            holds 3,4,5,7 = 12500
    #   w(0)           [─────────────────────────)       holds 3,4,5,7 = 12500
    #   w(2)                [─────────────────────────)  holds 3,4,5,7 = 12500
    #   w(4)                     [─────────────────────────)  holds 4,5,7 = 8500: not flagged
    book = Book()
    book.feed(
        window("threshold_crossed", -2, "10500.00"),
        window("threshold_crossed", 0, "10500.00"),
        window("threshold_crossed", 2, "10500.00"),
    )
    change = book.feed(window("window_closed", 0, "12500.00"))

    case = change.case
    assert len(book.cases) == 1
    assert case.case_id == f"66:26:{minute(-2)}"
    assert [w.alert_id for w in case.windows] == [f"66:26:{minute(m)}" for m in (-2, 0, 2)]
    # Not 10500 + 12500 + 10500: the windows share their transactions.
    assert case.total == Decimal("12500.00")
    assert (case.status, case.closed_windows) == (CaseStatus.CROSSED, 1)
    assert len(case.transactions) == 4  # each transfer once, though it is in three windows
    assert case.first_event is not None and case.last_event is not None
    assert (case.first_event.minute, case.last_event.minute) == (3, 7)


def test_a_case_is_confirmed_when_every_window_has_closed_and_crossed_again_when_it_grows() -> None:
    book = Book()
    book.feed(window("threshold_crossed", 0, "10500.00"), window("threshold_crossed", 2, "10500"))
    assert book.feed(window("window_closed", 0, "12500.00")).case.status is CaseStatus.CROSSED
    confirmed = book.feed(window("window_closed", 2, "12500.00")).case
    assert confirmed.status is CaseStatus.CONFIRMED
    assert confirmed.confirmed_at is not None

    # The burst goes on: a later window, touching the case, crosses.
    later = window("threshold_crossed", 10, "11000.00", transactions=[(minute(11), "11000", 2, 20)])
    grown = book.feed(later).case

    assert grown.status is CaseStatus.CROSSED
    assert grown.confirmed_at is None
    assert (len(grown.windows), grown.case_id) == (3, confirmed.case_id)


def test_windows_that_touch_join_and_windows_apart_do_not() -> None:
    #   w(0)   [0 ─────── 10)
    #   w(10)             [10 ─────── 20)     touches w(0): same case
    #   w(22)                                 [22 ─────── 32)   apart: a new case
    book = Book()
    tx = [(minute(1), "10001", 0, 1)]
    book.feed(window("window_closed", 0, "10001.00", transactions=tx))
    book.feed(window("window_closed", 10, "10001.00", transactions=[(minute(11), "10001", 0, 2)]))
    apart = book.feed(
        window("window_closed", 22, "10001.00", transactions=[(minute(23), "1", 0, 3)])
    )

    assert len(book.cases) == 2
    assert apart.case.case_id == f"66:26:{minute(22)}"
    assert apart.replaces == ()


def test_other_pairs_never_join_and_reversed_pairs_are_other_pairs() -> None:
    book = Book()
    book.feed(window("threshold_crossed", 0, "10500.00"))
    book.feed(window("threshold_crossed", 0, "10500.00", sender="26", receiver="66"))
    book.feed(window("threshold_crossed", 0, "10500.00", sender="7", receiver="8"))

    assert len(book.cases) == 3


def test_a_window_that_bridges_two_cases_merges_them_and_says_which_id_went() -> None:
    #   w(0)   [0 ─────── 10)                       case A
    #   w(12)                 [12 ─────── 22)       case B (apart from A)
    #   w(6)         [6 ─────── 16)                 overlaps both: A and B become one case
    book = Book()
    book.feed(window("window_closed", 0, "10001.00", transactions=[(minute(5), "10001", 0, 1)]))
    book.feed(window("window_closed", 12, "10001.00", transactions=[(minute(13), "10001", 0, 2)]))
    assert len(book.cases) == 2

    bridge = window("threshold_crossed", 6, "20002.00", transactions=[(minute(7), "20002", 0, 3)])
    change = book.feed(bridge)

    assert len(book.cases) == 1
    assert change.case.case_id == f"66:26:{minute(0)}"
    assert change.replaces == (f"66:26:{minute(12)}",)
    assert change.case.total == Decimal("20002.00")


def test_an_earlier_window_arriving_later_moves_the_case_id_to_it() -> None:
    # Records of one case come from different partitions of the topic: any order is possible.
    book = Book()
    book.feed(window("threshold_crossed", 2, "10500.00"))
    change = book.feed(window("threshold_crossed", 0, "10500.00"))

    assert change.case.case_id == f"66:26:{minute(0)}"
    assert change.replaces == (f"66:26:{minute(2)}",)
    assert change.case.answers_to(f"66:26:{minute(2)}")  # the old id still finds the case


def test_duplicate_records_change_nothing() -> None:
    book = Book()
    book.feed(window("threshold_crossed", 0, "10500.00"), window("window_closed", 0, "12500"))
    book.feed(window("threshold_crossed", 0, "10500.00"), window("window_closed", 0, "12500"))

    assert len(book.changes) == 2


def test_the_book_forgets_the_least_recently_changed_case_beyond_its_capacity() -> None:
    alerts, cases = AlertBook(), CaseBook(capacity=2)
    for number in range(3):
        record = window("window_closed", 0, "10500.00", sender=f"s{number}")
        alert = alerts.apply(parse_record(encoded(record)))
        assert alert is not None
        cases.apply(alert)

    assert [case.sender for case in cases.cases()] == ["s1", "s2"]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CaseBook(capacity=0)


# --- lines -----------------------------------------------------------------------------------


def test_case_lines_say_status_largest_total_windows_and_span() -> None:
    book = Book()
    book.feed(window("threshold_crossed", 0, "10500.00"))
    crossed = book.feed(window("threshold_crossed", -2, "10500.00"))
    book.feed(window("window_closed", -2, "12500.00"))
    confirmed = book.feed(
        window("window_closed", 0, "12500.00", detected_at="2026-11-28T13:09:59Z")
    )

    assert case_lines(crossed) == [
        "2026-11-28T13:00:00Z CROSSED   66 -> 26 total $10,500.00 (largest of 2 windows,"
        " 0 closed) 4 tx, events 2017-07-23 01:03:00–01:07:00"
        f" case=66:26:{minute(-2)} (was 66:26:{minute(0)})"
    ]
    assert case_lines(confirmed, evidence=True) == [
        "2026-11-28T13:09:59Z CONFIRMED 66 -> 26 total $12,500.00 (largest of 2 windows)"
        f" 4 tx, events 2017-07-23 01:03:00–01:07:00 case=66:26:{minute(-2)}",
        "    2017-07-23 01:03:00.000       $4,000.00  partition 2 offset 10",
        "    2017-07-23 01:04:00.000       $3,000.00  partition 2 offset 11",
        "    2017-07-23 01:05:00.000       $3,500.00  partition 2 offset 12",
        "    2017-07-23 01:07:00.000       $2,000.00  partition 2 offset 13",
    ]


def test_case_lines_say_when_the_evidence_was_capped() -> None:
    book = Book()
    change = book.feed(window("window_closed", 0, "12500.00", truncated=True))

    lines = case_lines(change, evidence=True)

    assert " 4+ tx," in lines[0]
    assert lines[-1] == "    … more transactions than listed (a window's evidence was capped)"


def test_case_document_is_the_case_with_its_windows_and_evidence() -> None:
    book = Book()
    book.feed(window("threshold_crossed", 0, "10500.00"))
    change = book.feed(window("window_closed", 0, "12500.00", detected_at="2026-11-28T13:09:59Z"))

    document = orjson.loads(orjson.dumps(case_document(change)))

    assert document == {
        "case_id": f"66:26:{minute(0)}",
        "replaces": [],
        "status": "confirmed",
        "sender": "66",
        "receiver": "26",
        "total": "12500.00",
        "windows": 1,
        "closed_windows": 1,
        "alert_ids": [f"66:26:{minute(0)}"],
        "window_start": "2017-07-23T01:00:00.000Z",
        "window_end": "2017-07-23T01:10:00.000Z",
        "first_event": "2017-07-23T01:03:00.000Z",
        "last_event": "2017-07-23T01:07:00.000Z",
        "count": 4,
        "transactions": [
            {
                "event_time": "2017-07-23T01:03:00.000Z",
                "amount": "4000",
                "partition": 2,
                "offset": 10,
            },
            {
                "event_time": "2017-07-23T01:04:00.000Z",
                "amount": "3000",
                "partition": 2,
                "offset": 11,
            },
            {
                "event_time": "2017-07-23T01:05:00.000Z",
                "amount": "3500",
                "partition": 2,
                "offset": 12,
            },
            {
                "event_time": "2017-07-23T01:07:00.000Z",
                "amount": "2000",
                "partition": 2,
                "offset": 13,
            },
        ],
        "truncated": False,
        "detected_at": "2026-11-28T13:00:00.000Z",
        "confirmed_at": "2026-11-28T13:09:59.000Z",
        "updated_at": "2026-11-28T13:09:59.000Z",
    }


def test_case_json_renderer_writes_one_object_per_case_change() -> None:
    stream = io.StringIO()
    renderer = CaseRenderer.json(stream)
    book = Book()
    book.feed(
        window("threshold_crossed", 0, "10500.00"),
        window("threshold_crossed", 2, "10500.00"),
        window("window_closed", 0, "12500.00"),
        window("window_closed", 2, "12500.00"),
    )

    for alert in book.windows:
        renderer.show(alert)
    renderer.close()

    documents = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(d["status"], d["windows"], d["closed_windows"]) for d in documents] == [
        ("crossed", 1, 0),
        ("crossed", 2, 0),
        ("crossed", 2, 1),
        ("confirmed", 2, 2),
    ]
    assert {d["case_id"] for d in documents} == {f"66:26:{minute(0)}"}


def test_a_settled_backlog_shows_each_case_once_as_it_stands() -> None:
    stream = io.StringIO()
    renderer = CaseRenderer.plain(stream, backlog=True)
    book = Book()
    book.feed(
        window("threshold_crossed", 2, "10500.00"),
        window("threshold_crossed", 0, "10500.00", detected_at="2026-11-28T12:59:00Z"),
        window("window_closed", 0, "12500.00"),
        window("window_closed", 2, "12500.00"),
        window("window_closed", 0, "10001.00", sender="7", receiver="8"),
    )

    for alert in book.windows:
        renderer.show(alert)
    renderer.caught_up()
    renderer.close()

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("2026-11-28T13:00:00Z CONFIRMED 66 -> 26 total $12,500.00")
    assert lines[0].endswith(f"case=66:26:{minute(0)}")  # no "(was ...)": never shown before
    assert " 7 -> 8 " in lines[1]


def test_one_case_passes_on_only_that_cases_windows_also_those_it_merged_with() -> None:
    stream = io.StringIO()
    only = OneCase(WindowRenderer.plain(stream), f"66:26:{minute(12)}")
    book = Book()
    book.feed(
        window("window_closed", 0, "10001.00", transactions=[(minute(5), "10001", 0, 1)]),
        window("window_closed", 30, "10001.00", transactions=[(minute(31), "10001", 0, 9)]),
        window("window_closed", 0, "10001.00", sender="7", receiver="8"),
        # Window 12 is the one asked for; window 6 then joins it to window 0.
        window("window_closed", 12, "10001.00", transactions=[(minute(13), "10001", 0, 2)]),
        window("threshold_crossed", 6, "20002.00", transactions=[(minute(7), "20002", 0, 3)]),
    )

    for alert in book.windows:
        only.show(alert)
    only.close()

    shown = [line.split("id=")[1] for line in stream.getvalue().splitlines()]
    assert shown == [f"66:26:{minute(m)}" for m in (12, 0, 6)]
