"""Faust's consumer, whose seek to the committed offsets also seeks the partitions that have none.

Faust's stream drops records it fetched when the group changes under it (a rebalance while a
batch is iterated, the flow stopped for a revocation): aiokafka's position is already past them.
Faust puts them back at the end of the rebalance by seeking every partition to its committed
offset, but aiokafka's ``seek_to_committed`` seeks only where an offset above 0 is committed.
A partition its group has not committed yet keeps the position the dropped records left, and
its records up to there are processed by no worker. Seen after a SIGSTOP: the four partitions
of the frozen worker, which had not committed yet, were taken over at offsets 1045 to 1118, the
first records written after the takeover. So this consumer seeks those partitions to their
beginning, where ``auto_offset_reset=earliest`` would have read them from (app.progress.Gaps
checks the first record after every assignment against the same rule).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP


class SeekingConsumer(driver.Consumer):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed: Mapping[Any, int | None] = await super().seek_to_committed()
        uncommitted = [tp for tp, offset in committed.items() if not offset]
        if uncommitted:
            # a partition revoked meanwhile is sought again at the next assignment
            with contextlib.suppress(IllegalStateError):
                await self._thread.seek_to_beginning(*uncommitted)
        return committed  # type: ignore[return-value]  # Faust reads None as not committed
