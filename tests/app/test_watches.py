"""A partition with records waiting and nothing read for STALL_S is stuck (app.runtime.watches)."""

from __future__ import annotations

from typing import Any

from app.runtime.watches import Excuse, Gaps, ProgressWatch, input_progress, waiting


def test_a_partition_read_no_further_while_records_wait_is_stuck() -> None:
    watch = ProgressWatch(stall_s=60)
    assert watch.stuck({"p0": 10}, {"p0": 500}, now=0) == []
    assert watch.stuck({"p0": 10}, {"p0": 900}, now=59) == []  # more waiting, none read
    assert watch.stuck({"p0": 10}, {"p0": 900}, now=60) == ["p0"]


def test_reading_on_is_no_stall() -> None:
    watch = ProgressWatch(stall_s=60)
    for second in range(0, 300, 5):
        assert watch.stuck({"p0": second}, {"p0": 10_000}, now=second) == []


def test_nothing_waiting_is_no_stall_and_a_wait_counts_from_when_records_come() -> None:
    watch = ProgressWatch(stall_s=60)
    assert watch.stuck({"p0": 10}, {"p0": 10}, now=0) == []  # read to the end
    assert watch.stuck({"p0": 10}, {"p0": 11}, now=100) == []  # a record came: the wait begins
    assert watch.stuck({"p0": 10}, {"p0": 11}, now=159) == []
    assert watch.stuck({"p0": 10}, {"p0": 11}, now=160) == ["p0"]


def test_nothing_read_yet_counts_as_minus_one() -> None:
    watch = ProgressWatch(stall_s=60)
    watch.stuck({"changelog/3": -1}, {"changelog/3": 2131}, now=0)
    assert watch.stuck({"changelog/3": -1, "changelog/4": 3231}, {"changelog/3": 2131}, 60) == [
        "changelog/3"
    ]


def test_offsets_faust_does_not_know_yet_are_nothing_read_and_nothing_waiting() -> None:
    # Faust's recovery can hold None for either (seen: the watch crashed the worker on it)
    watch = ProgressWatch(stall_s=60)
    assert watch.stuck({"c/3": None, "c/4": 10}, {"c/3": 2131, "c/4": None}, now=0) == []
    assert watch.stuck({"c/3": None, "c/4": 10}, {"c/3": 2131, "c/4": None}, now=60) == ["c/3"]


def test_a_rebalance_starts_every_wait_again() -> None:
    watch = ProgressWatch(stall_s=60)
    watch.stuck({"p0": 10}, {"p0": 500}, now=0)
    watch.reset()
    assert watch.stuck({"p0": 10}, {"p0": 500}, now=60) == []
    assert watch.stuck({"p0": 10}, {"p0": 500}, now=120) == ["p0"]


def committed(offset: int | None) -> dict[str, int | None]:
    return {"p0": offset}


def test_a_record_beyond_the_committed_offset_after_an_assignment_is_a_gap() -> None:
    gaps = Gaps()
    assert gaps.skipped("p0", 1943, committed(1710)) == (1710, 1942)  # seen after a SIGSTOP
    assert gaps.skipped("p0", 1944, committed(1710)) is None
    gaps.reset()
    assert gaps.skipped("p0", 614, committed(613)) == (613, 613)  # one alone, at the start
    gaps.reset()
    assert gaps.skipped("p0", 3, committed(None)) == (0, 2)  # unknown: from the beginning
    assert gaps.skipped("p0", 6, committed(None)) == (4, 5)  # the next ones still checked


def test_a_partition_without_a_committed_offset_is_read_from_its_beginning() -> None:
    # seen after a SIGSTOP: the new owner of a partition its group had never committed began at
    # offset 1107, the first record written after it took the partition over
    gaps = Gaps()
    assert gaps.skipped("p0", 1107, committed(None)) == (0, 1106)  # the broker then tells
    gaps.reset()
    assert gaps.skipped("p0", 1107, {}) == (0, 1106)
    gaps.reset()
    assert gaps.skipped("p0", 0, committed(None)) is None


def test_records_that_follow_on_are_no_gap() -> None:
    gaps = Gaps()
    assert gaps.skipped("p0", 100, committed(100)) is None
    assert gaps.skipped("p0", 101, committed(100)) is None
    assert gaps.skipped("p0", 103, committed(100)) is None  # one offset: a transaction marker
    assert gaps.skipped("p0", 50, committed(100)) is None  # a repeat, read before a rebalance
    assert gaps.skipped("p0", 104, committed(100)) is None
    assert gaps.skipped("p0", 110, committed(100)) == (105, 109)
    fresh = Gaps()
    assert fresh.skipped("p0", 0, committed(None)) is None


def test_the_committed_offset_is_asked_for_only_after_an_assignment() -> None:
    asked = []

    class Committed(dict[str, int]):
        def get(self, key: str, default: Any = None) -> Any:
            asked.append(key)
            return super().get(key, default)

    ask = Committed(p0=900)
    gaps = Gaps()
    for offset in range(900, 910):
        assert gaps.skipped("p0", offset, ask) is None
    assert len(asked) == 1
    gaps.reset()
    gaps.skipped("p0", 910, ask)
    assert len(asked) == 2


def test_records_read_before_a_seek_back_wait_for_the_missing_ones() -> None:
    gaps = Gaps()
    assert gaps.skipped("p0", 1107, committed(43)) == (43, 1106)
    gaps.reread("p0", 43, 1107, now=10.0)  # the caller sought the consumer back to 43
    for offset in (1108, 1109):  # fetched before the seek: they come again after 1106
        assert gaps.ahead("p0", offset)
    assert gaps.overdue(now=25.0, limit_s=15.0) == []
    assert gaps.overdue(now=25.1, limit_s=15.0) == ["p0"]
    assert not gaps.ahead("p0", 40)  # older than the gap: a repeat, deduplicated downstream
    assert gaps.skipped("p0", 40, committed(43)) is None
    assert not gaps.ahead("p0", 43)  # the first missing one: reading on as usual
    assert gaps.skipped("p0", 43, committed(43)) is None
    assert not gaps.ahead("p0", 44) and gaps.skipped("p0", 44, committed(43)) is None
    assert gaps.overdue(now=1000.0) == ["p0"]  # not read again up to 1107 yet: still watched
    for offset in range(45, 1108):
        assert not gaps.ahead("p0", offset) and gaps.skipped("p0", offset, committed(43)) is None
    assert gaps.overdue(now=1000.0) == []
    assert gaps.skipped("p0", 1200, committed(43)) == (1108, 1199)  # a new gap


def test_an_assignment_ends_a_reread() -> None:
    gaps = Gaps()
    gaps.reread("p0", 43, 1107, now=0.0)
    gaps.reset()  # the partition moved, or came back: read from the committed offset
    assert not gaps.ahead("p0", 1107)
    assert gaps.overdue(now=1000.0) == []


def test_an_input_partition_with_records_waiting_and_none_committed_is_stuck() -> None:
    # seen in fresh-clone runs after a kill -9: partitions kept 1,624 and 1,189 records
    # uncommitted until the test gave up (one of them processed on, past a hole in the acks)
    watch = ProgressWatch(stall_s=60)
    partitions = ["t/0", "t/6", "t/7"]
    ends = {"t/0": 2489, "t/6": 2510, "t/7": 2516}
    read, last = input_progress(partitions, {"t/0": 2400, "t/6": 886, "t/7": 2516}, ends)
    assert read == {"t/0": 2399, "t/6": 885, "t/7": 2515}  # t/7: all committed
    assert last == {"t/0": 2487, "t/6": 2508, "t/7": 2514}  # the last offset may be a marker
    assert watch.stuck(read, last, now=0) == []
    read, last = input_progress(partitions, {"t/0": 2488, "t/6": 886, "t/7": 2516}, ends)
    assert watch.stuck(read, last, now=60) == ["t/6"]  # t/0 committed on, up to a marker


def test_an_input_partition_never_committed_counts_from_offset_0() -> None:
    read, last = input_progress(["t/0"], {"t/0": None}, {"t/0": 10})
    assert read == {"t/0": -1} and last == {"t/0": 8}


def test_a_reread_from_a_marker_ends_at_the_first_record_after_it() -> None:
    # the broker could not be asked, or the first offset is a transaction marker: any record
    # below the one that showed the gap comes from the fetch after the seek
    gaps = Gaps()
    gaps.reread("p0", 43, 1107, now=0.0)
    assert gaps.ahead("p0", 1107)
    assert not gaps.ahead("p0", 44)
    assert not gaps.ahead("p0", 45)


def test_re_reads_wait_while_kafka_is_unreachable() -> None:
    gaps = Gaps()
    gaps.reread("p0", 43, 1107, now=0.0)
    gaps.postpone(now=100.0)  # Kafka came back at 100: nothing could come before
    assert gaps.overdue(now=150.0, limit_s=60.0) == []
    assert gaps.overdue(now=161.0, limit_s=60.0) == ["p0"]


def test_a_rebalance_excuses_a_stall_only_as_long_as_kafka_lets_one_last() -> None:
    # seen after a kill -9: a worker's input partitions kept 1,852 and 1,728 records
    # uncommitted for minutes, and a watch that skipped while Faust said it was rebalancing
    # never told
    excuse = Excuse(limit_s=60)
    assert excuse.holds(7, now=0) and excuse.holds(7, now=59)  # rebalance number 7
    assert not excuse.ran_out()  # not run out yet: nothing to tell
    assert not excuse.holds(7, now=60)
    assert excuse.ran_out() and not excuse.ran_out()  # told once
    assert not excuse.holds(7, now=500)
    assert not excuse.holds(None, now=501) and not excuse.ran_out()  # it ended
    assert excuse.holds(8, now=502) and excuse.holds(8, now=561)  # a new one: 60 s again
    assert excuse.holds(9, now=600)  # one more started before the look: 60 s from now


def test_records_are_waiting_past_the_offset_read() -> None:
    assert waiting(None, 0) and waiting(4, 5)
    assert not waiting(5, 5) and not waiting(None, -1)
    assert not waiting(3, None)  # the last offset is not known yet
