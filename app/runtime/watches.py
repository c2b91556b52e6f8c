"""A worker whose table recovery, or whose input, stops moving restarts.

Faust's consumer can stop fetching a partition after a rebalance, with nothing in its logs but a
warning repeated every five seconds. Seen in the kill -9 fault test: a worker's table recovery
waited four minutes for a changelog partition it had just been given, with 2,132 records to
read, and received none, so its input partitions were never processed either (faust-streaming
issue 629 and its kin). So, every few seconds, the worker compares, for each changelog partition
it is restoring, the offset read with the last one there is (Faust's recovery counts both). One
with records waiting and nothing read for STALL_S seconds is stuck, and the worker restarts
(app.runtime.localstate.restart_afresh): a new consumer and a new assignment. This module is
the pure rules; app/agents.py feeds them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

CHECK_S = 5.0  # seconds between two looks
STALL_S = 60.0  # records waiting and none read for this long: stuck

K = TypeVar("K", bound=Hashable)


def input_progress(
    partitions: list[K],
    committed: Mapping[K, int | None],
    ends: Mapping[K, int],
) -> tuple[dict[K, int], dict[K, int]]:
    """For ProgressWatch.stuck on input partitions: per partition, the last offset committed
    (the one before the committed offset; commits, not processing, are watched: a partition
    processed on but never committed past a record left unacknowledged is stuck too) and the
    last offset there is to process (two before the end offset: the last one may be the marker
    of an upstream writing with transactions)."""
    read = {tp: (committed.get(tp) or 0) - 1 for tp in partitions}
    return read, {tp: ends[tp] - 2 for tp in partitions if tp in ends}


def waiting(read: int | None, last: int | None) -> bool:
    """Records are left to read: the last offset is beyond the one read (None: nothing read yet;
    a last offset of None: not known yet)."""
    return last is not None and last > (-1 if read is None else read)


class ProgressWatch:
    def __init__(self, stall_s: float = STALL_S) -> None:
        self.stall_s = stall_s
        self.reading: dict[Hashable, tuple[int, float]] = {}  # offset read, since when

    def stuck(
        self, read: Mapping[K, int | None], last: Mapping[K, int | None], now: float
    ) -> list[K]:
        """The partitions with records waiting (last offset beyond the one read) whose read
        offset has not moved for ``stall_s``; ``-1`` or None reads as nothing read yet, and a
        last offset of None as not known yet."""
        reading: dict[Hashable, tuple[int, float]] = {}
        stuck = []
        for partition, read_offset in read.items():
            offset = -1 if read_offset is None else read_offset
            if not waiting(read_offset, last.get(partition)):
                continue  # a wait starts again from the next look
            before = self.reading.get(partition)
            since = before[1] if before is not None and before[0] == offset else now
            reading[partition] = (offset, since)
            if now - since >= self.stall_s:
                stuck.append(partition)
        self.reading = reading
        return stuck

    def reset(self) -> None:
        """A rebalance: partitions move and are read again from their committed offsets."""
        self.reading.clear()


class Excuse:
    """A reason not to look for a stall (a rebalance: nothing is committed meanwhile) while it
    has held for less than ``limit_s``. One that holds longer is no excuse: Faust can leave
    its flags set (a recovery that finds a newer generation returns without ending the
    rebalance), and Kafka ends a rebalance's join that lasts longer itself."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.reason: Hashable | None = None  # the one that holds (a rebalance's number)
        self.since = 0.0
        self.out = False  # it has held past the limit
        self.told = False  # and the caller was told so

    def holds(self, reason: Hashable | None, now: float) -> bool:
        """Whether ``reason`` (None: there is none) still excuses; a new one counts from now."""
        if reason != self.reason:
            self.reason, self.since, self.told = reason, now, False
        self.out = reason is not None and now - self.since >= self.limit_s
        return reason is not None and not self.out

    def ran_out(self) -> bool:
        """True once for a reason that has held past the limit."""
        if not self.out or self.told:
            return False
        self.told = True
        return True
