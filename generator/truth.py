"""Ground truth of a run: what was injected, for tests and demos to check the pipeline against.

One JSON object per line: one per scenario (`structuring` must alert, `near_miss` must not) and
one per malformed record (the dead-letter reason it must get). Built from the records actually
emitted, so it stays true for runs cut short by a count, a duration or Ctrl-C.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from generator.formats import format_decimal, format_rfc3339_ms
from generator.malformed import DlqReason
from generator.scenarios import ScenarioType
from generator.stream import Record


@dataclass(frozen=True)
class ScenarioTruth:
    """One injected scenario as emitted; `complete` is False if the run stopped inside it."""

    type: ScenarioType
    sender: str
    receiver: str
    first_event_ms: int
    last_event_ms: int
    total_cents: int
    count: int
    complete: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "sender": self.sender,
            "receiver": self.receiver,
            "first_event": format_rfc3339_ms(self.first_event_ms),
            "last_event": format_rfc3339_ms(self.last_event_ms),
            "total": format_decimal(self.total_cents),
            "count": self.count,
            "complete": self.complete,
        }


@dataclass(frozen=True)
class MalformedTruth:
    """One malformed record and the dead-letter reason the pipeline must give it."""

    reason: DlqReason
    value: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "malformed",
            "reason": self.reason,
            "value_b64": base64.b64encode(self.value).decode("ascii"),
        }


TruthEntry: TypeAlias = ScenarioTruth | MalformedTruth


class GroundTruth:
    """Collects ground truth while records stream past, in the order of first appearance.

    Holds one small entry per scenario and per malformed record, never the normal traffic, so
    an endless run with `--ground-truth` stays small in memory unless it is mostly malformed.
    """

    def __init__(self) -> None:
        self._entries: list[TruthEntry | int] = []  # an int stands for scenario index
        self._scenarios: dict[int, ScenarioTruth] = {}

    def add(self, record: Record) -> None:
        if record.kind == "malformed" and record.expected_reason is not None:
            self._entries.append(MalformedTruth(record.expected_reason, record.value))
            return
        ref = record.scenario
        if ref is None or record.event_time_ms is None or record.amount_cents is None:
            return
        seen = self._scenarios.get(ref.index)
        if seen is None:
            self._entries.append(ref.index)
            first = record.event_time_ms
            seen = ScenarioTruth(ref.type, ref.sender, ref.receiver, first, first, 0, 0, False)
        count = seen.count + 1
        self._scenarios[ref.index] = ScenarioTruth(
            ref.type,
            ref.sender,
            ref.receiver,
            min(seen.first_event_ms, record.event_time_ms),
            max(seen.last_event_ms, record.event_time_ms),
            seen.total_cents + record.amount_cents,
            count,
            complete=count == ref.transfers,
        )

    def entries(self) -> list[TruthEntry]:
        return [self._scenarios[e] if isinstance(e, int) else e for e in self._entries]

    def scenarios(self) -> list[ScenarioTruth]:
        return [e for e in self.entries() if isinstance(e, ScenarioTruth)]


def ground_truth(records: Iterable[Record]) -> list[TruthEntry]:
    """Ground-truth entries for a sequence of emitted records."""
    truth = GroundTruth()
    for record in records:
        truth.add(record)
    return truth.entries()


def write_ground_truth(
    path: str | Path, records_or_scenarios: Iterable[Record | TruthEntry]
) -> int:
    """Write JSON Lines ground truth; returns the number of lines.

    Takes emitted records (aggregated per scenario) and/or ready entries (written first).
    """
    truth = GroundTruth()
    entries: list[TruthEntry] = []
    for item in records_or_scenarios:
        if isinstance(item, Record):
            truth.add(item)
        else:
            entries.append(item)
    entries.extend(truth.entries())
    with Path(path).open("w", encoding="utf-8") as out:
        for entry in entries:
            out.write(json.dumps(entry.to_json(), ensure_ascii=False) + "\n")
    return len(entries)
