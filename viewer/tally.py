"""Counts for the live view's footer: the alert rate and the dead letters. Pure, no I/O.

The rate counts flagged windows (distinct ``alert_id``) by the worker's ``detected_at``, so a
backlog read with ``--from-beginning`` does not look like a storm that is happening now. Dead
letters are counted once per input record: a worker that retries after a crash may write one
twice, and the dead letter names its source record (topic, partition, offset).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import datetime

import orjson

from viewer.alerts import Alert, AlertStatus

RATE_WINDOW_S = 60.0
LATE = "late"

Clock = Callable[[], float]
SourceKey = tuple[str, int, int]


class Tally:
    """Alert rate over the last minute, dead letters in total and by reason."""

    def __init__(self, now: Clock = time.time, remember: int = 200_000) -> None:
        self._now = now
        self._remember = remember
        self._recent: list[float] = []  # detection times (epoch s) of new windows, last minute
        self._sources: OrderedDict[SourceKey, None] = OrderedDict()
        self.dead_letters = 0
        self.reasons: Counter[str] = Counter()

    @property
    def late(self) -> int:
        return self.reasons[LATE]

    def alert(self, alert: Alert) -> None:
        """Note one change of a window; only its first appearance counts towards the rate."""
        first_seen = alert.status is AlertStatus.CROSSED or alert.crossed_at is None
        if not first_seen:
            return
        stamp = _epoch(alert.updated_at)
        if stamp >= self._now() - RATE_WINDOW_S:
            self._recent.append(stamp)

    def alerts_per_minute(self) -> int:
        """Windows first detected in the last minute (by the worker's clock)."""
        horizon = self._now() - RATE_WINDOW_S
        self._recent = [stamp for stamp in self._recent if stamp >= horizon]
        return len(self._recent)

    def dead_letter(self, value: bytes | None) -> None:
        """Count one record of the dead-letter topic (JSON, see docs/alerts.md)."""
        if value is None:
            return  # a tombstone: nothing was rejected
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError:
            document = None
        if not isinstance(document, dict):
            document = {}
        source = _source(document)
        if source is not None:
            if source in self._sources:
                return
            self._sources[source] = None
            if len(self._sources) > self._remember:
                self._sources.popitem(last=False)
        reason = document.get("reason")
        self.dead_letters += 1
        self.reasons[reason if isinstance(reason, str) and reason.isidentifier() else "other"] += 1


def _source(document: dict[str, object]) -> SourceKey | None:
    topic, partition, offset = (document.get(field) for field in ("topic", "partition", "offset"))
    if isinstance(topic, str) and isinstance(partition, int) and isinstance(offset, int):
        return (topic, partition, offset)
    return None


def _epoch(stamp: datetime) -> float:
    return stamp.timestamp()
