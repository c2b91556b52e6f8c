"""An independent, brute-force model of the detection semantics (DESIGN §2), for the tests.

It keeps every window of every pair explicitly (no panes) and follows the per-partition
watermark rule literally: an event joins the windows of its time that are still open at the
watermark of its partition, then the watermark becomes max(event time - out-of-orderness).
At the end of input every window closes. Deliberately written without the app's code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.errors import BadRecord
from app.parsing import parse_transaction


@dataclass
class Expected:
    """alert_id -> (total cents, count) of window_closed; of threshold_crossed at crossing;
    dead letters as (partition, offset) -> reason."""

    closed: dict[str, tuple[int, int]] = field(default_factory=dict)
    crossed: dict[str, tuple[int, int]] = field(default_factory=dict)
    dead: dict[tuple[int, int], str] = field(default_factory=dict)


def expected_alerts(
    records: Iterable[tuple[int, int, bytes | None]],
    *,
    size_ms: int = 600_000,
    slide_ms: int = 120_000,
    threshold_cents: int = 1_000_000,
    out_of_orderness_ms: int = 0,
    max_bytes: int = 65536,
) -> Expected:
    """``records``: (partition, offset, value) in the order of each partition's log."""
    watermark: dict[int, int] = defaultdict(lambda: -(2**62))
    windows: dict[tuple[str, int], list[int]] = {}
    out = Expected()
    for partition, offset, value in records:
        try:
            tx = parse_transaction(value, max_bytes=max_bytes)
        except BadRecord as bad:
            out.dead[(partition, offset)] = bad.reason
            continue
        joined = False
        start = tx.time_ms - tx.time_ms % slide_ms
        while start > tx.time_ms - size_ms:
            end = start + size_ms
            if end > watermark[partition]:  # still open
                joined = True
                window = windows.setdefault((f"{tx.sender}:{tx.receiver}", start), [0, 0])
                window[0] += tx.cents
                window[1] += 1
                alert_id = f"{tx.sender}:{tx.receiver}:{start}"
                if window[0] > threshold_cents and alert_id not in out.crossed:
                    out.crossed[alert_id] = (window[0], window[1])
            start -= slide_ms
        if not joined:
            out.dead[(partition, offset)] = "late"
        watermark[partition] = max(watermark[partition], tx.time_ms - out_of_orderness_ms)
    for (pair, start), (total, count) in windows.items():
        if total > threshold_cents:
            out.closed[f"{pair}:{start}"] = (total, count)
    return out
