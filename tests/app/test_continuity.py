"""The offsets of a partition follow on; a jump is sought back, once it is closed it is over."""

from __future__ import annotations

from app.continuity import Continuity, Verdict

PROCESS, SKIP, SEEK = Verdict.PROCESS, Verdict.SKIP, Verdict.SEEK


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def verdicts(continuity: Continuity, offsets: list[int], partition: int = 0) -> list[Verdict]:
    return [continuity.admit(partition, offset) for offset in offsets]


def test_following_offsets_and_repeats_are_processed() -> None:
    c = Continuity(patience=10, now=Clock())
    assert verdicts(c, [40, 41, 42, 41, 43]) == [PROCESS] * 5
    assert c.jumps == 0


def test_a_jump_is_sought_back_and_what_comes_from_beyond_is_skipped_until_it_is_closed() -> None:
    # 1710 then 1943: 1711..1942 never delivered (Faust after a rebalance)
    c = Continuity(patience=10, now=Clock())
    assert verdicts(c, [1709, 1710, 1943]) == [PROCESS, PROCESS, SEEK]
    assert c.missing(0) == 1711
    assert verdicts(c, [1944, 1945]) == [SKIP, SKIP]  # already on their way before the seek
    assert verdicts(c, [1711, 1712]) == [PROCESS, PROCESS]  # read again after it, in order
    assert verdicts(c, list(range(1713, 1950))) == [PROCESS] * 237
    assert (c.jumps, c.accepted) == (1, 0)


def test_offsets_that_are_not_in_the_log_are_accepted_once_the_seek_went_back() -> None:
    # 7 is a transaction marker: the seek to 7 delivers 8 again
    c = Continuity(patience=10, now=Clock())
    assert verdicts(c, [5, 6, 8, 9, 8, 9, 10]) == [PROCESS, PROCESS, SEEK, SKIP] + [PROCESS] * 3
    assert (c.jumps, c.accepted) == (1, 1)


def test_a_seek_that_does_not_come_back_is_asked_for_again() -> None:
    clock = Clock()
    c = Continuity(patience=10, now=clock)
    assert verdicts(c, [1, 5, 6]) == [PROCESS, SEEK, SKIP]
    clock.t = 11
    assert verdicts(c, [7]) == [SEEK]
    assert c.missing(0) == 2
    assert c.jumps == 2


def test_partitions_are_apart_and_an_assignment_starts_them_again() -> None:
    c = Continuity(patience=10, now=Clock())
    assert c.admit(0, 10) is PROCESS and c.admit(1, 500) is PROCESS
    assert c.admit(1, 501) is PROCESS and c.admit(0, 11) is PROCESS
    c.reset({})
    assert c.admit(0, 300) is PROCESS  # without a committed offset: from the first record


def test_after_an_assignment_a_record_from_beyond_the_committed_offset_is_sought_back() -> None:
    # fetched before the rebalance, delivered after it: 598..607 would be skipped
    c = Continuity(patience=10, now=Clock())
    c.reset({0: 598, 1: 40})
    assert verdicts(c, [608, 609, 598, 599]) == [SEEK, SKIP, PROCESS, PROCESS]
    assert c.missing(1) == 40
    assert verdicts(c, [35, 40], partition=1) == [PROCESS, PROCESS]  # repeats are processed
