"""Panes, windows, closing and lateness at the edges. Times in minutes; SIZE 10, SLIDE 2.

Each diagram shows the event(s) as `x` on a minute axis and the windows involved.
"""

from __future__ import annotations

from app.parsing import Transaction
from app.windowing import NO_WATERMARK, DueIndex, PairWindows, Source, WindowSpec

MIN = 60_000
SPEC = WindowSpec(size_ms=10 * MIN, slide_ms=2 * MIN, threshold_cents=1_000_000, max_evidence=3)


def tx(minute: float, dollars: str, pair: tuple[str, str] = ("a", "b")) -> Transaction:
    whole, _, part = dollars.partition(".")
    return Transaction(int(minute * MIN), pair[0], pair[1], int(whole) * 100 + int(part or 0))


def src(offset: int, partition: int = 0) -> Source:
    return Source("k", partition, offset)


def fresh() -> PairWindows:
    return PairWindows(partition=0, closed_ms=NO_WATERMARK)


def test_window_starts_of_an_event_inside_a_pane() -> None:
    #   0   2   4   6   8   10  12
    #   |   |   |   |   | x |   |      x at 9
    #  [0 ................10)          the windows holding 9 start in (9-10, 9]:
    #      [2 ...............12)       0, 2, 4, 6, 8 (and -2 is out: it ends at 8)
    assert [s // MIN for s in SPEC.window_starts(9 * MIN)] == [0, 2, 4, 6, 8]


def test_an_event_exactly_at_a_window_start_belongs_to_it() -> None:
    #       x at 10
    #  [0 ......10)        ends at 10: 10 is not in it
    #          [10 ......20)   starts at 10: 10 is in it
    starts = [s // MIN for s in SPEC.window_starts(10 * MIN)]
    assert starts == [2, 4, 6, 8, 10]
    assert 0 not in starts


def test_an_event_one_millisecond_before_a_window_end_is_in_it() -> None:
    assert 0 in {s // MIN for s in SPEC.window_starts(10 * MIN - 1)}


def test_totals_exactly_at_the_threshold_do_not_alert_one_cent_more_does() -> None:
    windows = fresh()
    assert windows.add(SPEC, tx(1, "5000"), src(0), NO_WATERMARK) == []
    assert windows.add(SPEC, tx(3, "5000.00"), src(1), NO_WATERMARK) == []  # 10000.00: no
    crossed = windows.add(SPEC, tx(5, "0.01"), src(2), NO_WATERMARK)
    assert crossed is not None
    #  1, 3, 5 are together in the windows starting at -4, -2 and 0
    assert sorted(w.start_ms // MIN for w in crossed) == [-4, -2, 0]
    assert {w.total for w in crossed} == {1_000_001}
    # each crossing is reported once
    assert windows.add(SPEC, tx(5, "1"), src(3), NO_WATERMARK) == []


def test_closing_reports_flagged_windows_once_and_drops_unneeded_panes() -> None:
    #   0   2   4   6   8   10  12  14
    #     x       x                      6000 at 1, 6000 at 5: windows -4, -2, 0 hold both
    windows = fresh()
    windows.add(SPEC, tx(1, "6000"), src(0), NO_WATERMARK)
    windows.add(SPEC, tx(5, "6000"), src(1), NO_WATERMARK)
    # watermark 10: windows ending at or before 10 (starts -8 .. 0) close
    closed = windows.close(SPEC, 10 * MIN)
    assert [(w.start_ms // MIN, w.total, w.transfers) for w in closed] == [
        (-4, 1_200_000, 2),
        (-2, 1_200_000, 2),
        (0, 1_200_000, 2),
    ]
    assert windows.close(SPEC, 10 * MIN) == []  # idempotent
    assert sorted(windows.panes) == [4 * MIN]  # the pane at 0 is in no open window
    # no open window is above the threshold: the next visit is when the pane at 4 expires
    assert windows.next_close_ms(SPEC) == 14 * MIN
    assert windows.close(SPEC, 20 * MIN) == []  # windows 2.. hold only 6000
    assert windows.panes == {}
    assert windows.next_close_ms(SPEC) is None


def test_the_next_visit_is_the_first_flagged_window_end_or_the_oldest_pane_expiry() -> None:
    #   0   2   4   6   8   10  12  14
    #     x       x                      6000 at 1, 6000 at 5: windows -4, -2, 0 are flagged
    windows = fresh()
    windows.add(SPEC, tx(1, "6000"), src(0), NO_WATERMARK)
    assert windows.next_close_ms(SPEC) == 10 * MIN  # the pane at 0 expires with [0, 10)
    windows.add(SPEC, tx(5, "6000"), src(1), NO_WATERMARK)
    assert windows.next_close_ms(SPEC) == 6 * MIN  # [-4, 6) is flagged and ends first
    windows.close(SPEC, 6 * MIN)
    assert windows.next_close_ms(SPEC) == 8 * MIN  # then [-2, 8)


def test_a_window_closes_when_the_watermark_reaches_its_end() -> None:
    windows = fresh()
    windows.add(SPEC, tx(9, "10001"), src(0), NO_WATERMARK)
    #  [0 ......... x 10)    9 is in windows 0..8; the first to end is [0, 10):
    #  a watermark of 10 min minus 1 ms does not close it, 10 does
    assert windows.close(SPEC, 10 * MIN - 1) == []
    assert [w.start_ms for w in windows.close(SPEC, 10 * MIN)] == [0]


def test_an_event_joins_only_its_open_windows_and_is_late_when_none_is() -> None:
    #   0   2   4   6   8   10  12  14  16
    #       x                       W        watermark 15 (floor 14): ends <= 14 are closed
    #  [-4 ............6)  ...  [4 ..........14)   every window holding 5 ends <= 14: late
    #               x                        7 is in windows -2 .. 6;
    #                      [6 ...............16)  only the one starting at 6 is open
    windows = fresh()
    assert windows.add(SPEC, tx(5, "20000"), src(0), 15 * MIN) is None
    joined = windows.add(SPEC, tx(7, "20000"), src(1), 15 * MIN)
    assert joined is not None
    assert [w.start_ms // MIN for w in joined] == [6]
    assert windows.closed_ms == 14 * MIN  # closed windows never report the new pane
    assert [w.start_ms // MIN for w in windows.close(SPEC, 16 * MIN)] == [6]


def test_duplicates_are_recognised_by_source_offset() -> None:
    windows = fresh()
    windows.add(SPEC, tx(1, "1"), src(5), NO_WATERMARK)
    assert windows.is_duplicate(src(5))
    assert windows.is_duplicate(src(4))
    assert not windows.is_duplicate(src(6))
    assert not windows.is_duplicate(src(0, partition=1))


def test_evidence_is_capped_and_says_truncated() -> None:
    windows = fresh()
    for offset in range(5):
        windows.add(SPEC, tx(1, "3000"), src(offset), NO_WATERMARK)
    window = windows.window(SPEC, 0)
    assert (window.total, window.transfers, len(window.evidence), window.truncated) == (
        1_500_000,
        5,
        3,
        True,
    )


def test_json_round_trip() -> None:
    windows = fresh()
    windows.add(SPEC, tx(1, "6000"), src(0), NO_WATERMARK)
    windows.add(SPEC, tx(5, "6000"), src(1), NO_WATERMARK)
    again = PairWindows.from_json(windows.to_json())
    assert again == windows


def test_due_index_hands_out_pairs_in_order_once() -> None:
    due = DueIndex()
    due.schedule(4, "x")
    due.schedule(2, "y")
    due.schedule(2, "z")
    due.schedule(None, "w")
    assert list(due.pop_due(3)) == ["y", "z"]
    assert list(due.pop_due(3)) == []
    assert list(due.pop_due(10)) == ["x"]
