"""A worker whose table recovery stops reading restarts; input records that never reached it
are found and read again (Gaps).

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
from dataclasses import dataclass
from typing import TypeVar

CHECK_S = 5.0  # seconds between two looks
STALL_S = 60.0  # records waiting and none read for this long: stuck
REREAD_S = 60.0  # a partition sought back whose missing records do not come for this long

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


@dataclass
class Reread:
    first: int  # the first offset missing: sought back to
    until: int  # the offset that showed the gap: read again, the re-read is over
    since: float
    reached: bool = False  # ``first`` came again


class Gaps:
    """Offsets of a partition that never reached the worker. After a rebalance Faust's stream
    drops the records fetched under the earlier generation; they are read again only at the
    next rebalance, and one alone is committed past (docs/semantics.md). So the first record
    after an assignment is expected at the committed offset, and each later one right after the
    one before, give or take one offset (a transaction marker of an upstream writing with
    transactions; one at the committed offset is checked with the broker like any gap). When
    the broker confirms a gap, the caller seeks back to its first offset and leaves the records
    read before the seek alone until it comes (``reread``, ``ahead``)."""

    def __init__(self) -> None:
        self.next: dict[Hashable, int] = {}  # per partition read since the assignment
        self.rereading: dict[Hashable, Reread] = {}  # partitions sought back

    def reread(self, partition: Hashable, first: int, until: int, now: float) -> None:
        """The consumer was sought back to ``first``, the first record missing before
        ``until`` (the record that showed the gap): records from ``until`` on are ahead (below)
        until ``first`` comes again, and the re-read is over when ``until`` is read again."""
        self.rereading[partition] = Reread(first, until, now)
        self.next[partition] = first

    def ahead(self, partition: Hashable, offset: int) -> bool:
        """While a partition is read again from an earlier offset, True for a record read
        before the seek (from ``until`` on): it comes again after the ones missing, so it
        is neither processed nor acknowledged now (processed first, it would mark the missing
        ones as applied already; acknowledged, its offset would be committed past them)."""
        reread = self.rereading.get(partition)
        if reread is None:
            return False
        if not reread.reached:
            if offset >= reread.until:
                return True
            # one of the skipped records (the first may be a transaction marker): only the
            # fetch after the seek holds those
            reread.reached = offset >= reread.first
        elif offset >= reread.until:
            del self.rereading[partition]  # read again up to where the gap was seen
        return False

    def postpone(self, now: float) -> None:
        """Kafka is unreachable: the re-reads wait, and their time counts from now."""
        for reread in self.rereading.values():
            reread.since = now

    def overdue(self, now: float, limit_s: float = REREAD_S) -> list[Hashable]:
        """The partitions sought back more than ``limit_s`` ago that have not been read again
        up to where their gap was seen."""
        return [p for p, reread in self.rereading.items() if now - reread.since > limit_s]

    def skipped(
        self, partition: Hashable, offset: int, committed: Mapping[Hashable, int | None]
    ) -> tuple[int, int] | None:
        """The first and last offsets skipped before ``offset``, if any (``committed``: the
        committed offsets as the consumer knows them, looked up for the first record after an
        assignment; None or absent if unknown, and then taken as 0). A hint: the caller asks the
        broker before acting."""
        expected = self.next.get(partition)
        self.next[partition] = max(offset + 1, expected or 0)
        if expected is None:
            # unknown (nothing committed yet, or offset 0, which Faust does not keep): the
            # partition is read from its beginning (auto_offset_reset=earliest), so a record
            # beyond offset 0 may be a gap; the broker tells (the log may start later)
            start, allowed = committed.get(partition) or 0, 0
        else:
            start, allowed = expected, 1
        if offset > start + allowed:
            return start, offset - 1
        return None

    def reset(self) -> None:
        """A new assignment: each partition starts again from its committed offset."""
        self.next.clear()
        self.rereading.clear()
