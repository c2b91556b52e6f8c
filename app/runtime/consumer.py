"""Faust's consumer, whose seek to the committed offsets also seeks the partitions that have none,
and which can read a partition again from an earlier offset.

Faust's stream drops records it fetched when the group changes under it (a rebalance while a
batch is iterated, the flow stopped for a revocation): aiokafka's position is already past them.
Faust puts them back at the end of the rebalance by seeking every partition to its committed
offset, but aiokafka's ``seek_to_committed`` seeks only where an offset above 0 is committed.
A partition its group has not committed yet keeps the position the dropped records left, and
its records up to there are processed by no worker. Seen after a SIGSTOP: the four partitions
of the frozen worker, which had not committed yet, were taken over at offsets 1045 to 1118, the
first records written after the takeover. So this consumer seeks those partitions to their
beginning, where ``auto_offset_reset=earliest`` would have read them from (app.runtime.watches.Gaps
checks the first record after every assignment against the same rule).

It also reads a partition again from an offset when app.agents finds records that never
reached the worker (``reread``), and it keeps Faust's commits moving where Faust's bookkeeping
would hold them (``_new_offset``, ``follow_commit``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP


class SeekingConsumer(driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rereading: dict[TP, tuple[int, int]] = {}  # partitions sought back: first, until

    async def seek_to_committed(self) -> Mapping[TP, int]:
        self.rereading.clear()  # the end of a rebalance: every partition starts again
        committed: Mapping[Any, int | None] = await super().seek_to_committed()
        changelogs = self.app.tables.changelog_topics  # the tables' recovery seeks those
        uncommitted = [
            tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs
        ]
        if uncommitted:
            # a partition revoked meanwhile is sought again at the next assignment
            with contextlib.suppress(IllegalStateError):
                await self._thread.seek_to_beginning(*uncommitted)
        return committed  # type: ignore[return-value]  # Faust reads None as not committed

    async def reread(self, tp: TP, first: int, until: int) -> None:
        """Read ``tp`` again from ``first``, the first of the records before ``until`` that
        Faust's stream skipped (app.agents).

        Faust's fetch loop keeps a read offset per partition, moves it with every record it
        passes on and drops any record below it. The records fetched before the seek (from
        ``until`` on) would move it past the ones read again, so they are dropped here, before
        the loop sees them, until one of the skipped records comes (one below ``until``: only
        the new fetch holds those; the first may be a transaction marker); the read offset is
        cleared for that one."""
        self.rereading[tp] = (first, until)
        await self.seek_wait({tp: first})

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        rereading = self.rereading
        async for tp, message in super().getmany(timeout):
            if rereading:
                sought = rereading.get(tp)
                if sought is not None:
                    if message.offset >= sought[1]:
                        continue  # fetched before the seek: it comes again
                    if message.offset >= sought[0]:
                        del rereading[tp]
                        self._read_offset[tp] = None
            yield tp, message

    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit next, as Faust finds it: the end of the run of consecutive
        offsets acknowledged, from the committed one on. Faust also adds the gaps it saw in a
        partition's offsets (records it dropped, transaction markers) to the offsets
        acknowledged, including offsets acknowledged already or later (read again). An offset
        listed twice ends the run, and the commits then advance by one offset per commit
        interval (seen after a kill -9: 1,600 records waiting, committed at 7 offsets per
        20 s, until the test gave up). So each offset is listed once, and none below the one
        committed."""
        acked = self._acked[tp]
        acked[:] = sorted(set(acked))
        offset: int | None = super()._new_offset(tp)  # adds the gaps: an offset may come twice
        if offset is not None and acked:
            acked[:] = sorted({acknowledged for acknowledged in acked if acknowledged >= offset})
        return offset

    def follow_commit(self, tp: TP, committed: int) -> None:
        """The group has committed ``tp`` up to ``committed``, beyond the offset this consumer
        knows (the broker says so: a commit of the partition's previous owner, made late).
        Faust commits only once the records from the offset it knows are acknowledged, and those
        before ``committed`` are not read again: it would never commit the partition again
        (seen: 107 committed on the broker, 83 by Faust's count, the records from 107 on
        acknowledged and none committed for 60 s)."""
        known = self._committed_offset.get(tp)
        if known is not None and committed > known:
            self._committed_offset[tp] = committed
