"""A partition with records waiting and nothing read for STALL_S is stuck (app.runtime.watches)."""

from __future__ import annotations

from app.runtime.watches import Excuse, ProgressWatch, input_progress, waiting


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
