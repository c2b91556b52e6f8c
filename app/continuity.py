"""Each input partition's offsets must follow on: a jump means records were never delivered.

In a rebalance Faust's consumer can go on fetching a partition from where an earlier fetch left
off instead of from the committed offset (faust-streaming issues 216, 221, 629; seen here after a
worker was stopped past the session timeout: partition 0 went from offset 1710 to 1943). Faust
counts the offsets it jumped as a gap, as it would compacted ones, and commits past them: the
records are lost without a word. So the worker checks that the records of each partition follow
on from its committed offset at the assignment. On a jump it seeks the partition back to the
first missing offset and skips what still comes from beyond it until the missing record arrives;
those are read again after it. A jump that the seek does not close within ``patience`` seconds
(records deleted by retention, transaction markers) is accepted, and counted. Pure: the agent
does the seeking.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    PROCESS = "process"
    SKIP = "skip"  # from beyond a jump, read again after the seek
    SEEK = "seek"  # the first record beyond a jump: skip it and seek back to ``missing``


@dataclass
class Seeking:
    last: int  # the highest offset skipped since the jump
    since: float  # when the seek was asked for


@dataclass
class Continuity:
    patience: float  # seconds a seek may take before it is asked for again
    now: Callable[[], float]
    expected: dict[Hashable, int] = field(default_factory=dict)  # next offset, per partition
    seeking: dict[Hashable, Seeking] = field(default_factory=dict)
    jumps: int = 0  # seeks asked for
    accepted: int = 0  # jumps a seek did not close: the offsets are not in the log

    def reset(self, committed: Mapping[Hashable, int]) -> None:
        """A new assignment: each partition starts again from its committed offset (records
        from beyond it were fetched before the rebalance: they are read again after a seek), or,
        without one, from its first record."""
        self.expected = {p: offset for p, offset in committed.items() if offset >= 0}
        self.seeking.clear()

    def admit(self, partition: Hashable, offset: int) -> Verdict:
        expected = self.expected.get(partition)
        if expected is None or offset <= expected - 1:  # the first one, or a repeat
            self.expected[partition] = max(offset + 1, expected or 0)
            return Verdict.PROCESS
        seeking = self.seeking.get(partition)
        if offset == expected or (seeking is not None and offset <= seeking.last):
            if offset != expected:  # the seek went back, and found no record before this one
                self.accepted += 1
            self.seeking.pop(partition, None)
            self.expected[partition] = offset + 1
            return Verdict.PROCESS
        if seeking is not None and self.now() - seeking.since < self.patience:
            seeking.last = offset  # still from before the seek
            return Verdict.SKIP
        self.jumps += 1
        self.seeking[partition] = Seeking(last=offset, since=self.now())
        return Verdict.SEEK

    def missing(self, partition: Hashable) -> int:
        """The first offset not delivered (where a SEEK verdict seeks back to)."""
        return self.expected[partition]
