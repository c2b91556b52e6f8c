"""Prometheus text for the worker's /metrics: counters, gauges and one latency histogram. Pure."""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from app.models import THRESHOLD_CROSSED, WINDOW_CLOSED
from app.parsing import REASONS

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

COUNTERS = {
    "received": ("fraud_records_received_total", "Input records read"),
    "processed": ("fraud_transactions_processed_total", "Transactions added to windows"),
    "late": ("fraud_late_total", "Transactions whose windows had all closed"),
    "duplicates_skipped": ("fraud_duplicates_skipped_total", "Replayed records recognised"),
}
LABELLED = (
    ("alerts_", "fraud_alerts_total", "kind", "Alerts written to the fraud topic"),
    ("dlq_", "fraud_dead_letters_total", "reason", "Records written to the dead-letter topic"),
)
# Label values served from the start, at 0: rate() sees a series' first increase only if it
# scraped the series before it, and the dashboard's panels show 0, not "No data", on a worker
# that has raised no alert yet.
KNOWN_LABELS = {
    "alerts_": (THRESHOLD_CROSSED, WINDOW_CLOSED),
    "dlq_": REASONS,
}


class Histogram:
    """Cumulative buckets, as Prometheus wants them."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    def lines(self, name: str, help_text: str) -> list[str]:
        out = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        running = 0
        for bound, count in zip([*map(str, self.buckets), "+Inf"], self.counts, strict=True):
            running += count
            out.append(f'{name}_bucket{{le="{bound}"}} {running}')
        out += [f"{name}_sum {self.total:.6f}", f"{name}_count {running}"]
        return out


def prometheus_text(
    counts: Mapping[str, int],
    latency: Histogram,
    gauges: Mapping[str, tuple[str, float | Mapping[str, float]]],
) -> str:
    """``gauges``: name -> (help, value, or {partition: value} for a per-partition gauge)."""
    lines = []
    for key, (name, help_text) in COUNTERS.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        lines.append(f"{name} {counts.get(key, 0)}")
    for prefix, name, label, help_text in LABELLED:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        keys = {k for k in counts if k.startswith(prefix)}
        keys |= {prefix + value for value in KNOWN_LABELS.get(prefix, ())}
        for key in sorted(keys):
            lines.append(f'{name}{{{label}="{key.removeprefix(prefix)}"}} {counts.get(key, 0)}')
    lines += latency.lines(
        "fraud_processing_latency_seconds",
        "From a record's Kafka timestamp to the end of its processing",
    )
    for name, (help_text, value) in gauges.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        if isinstance(value, Mapping):
            lines += [f'{name}{{partition="{p}"}} {v:g}' for p, v in sorted(value.items())]
        else:
            lines.append(f"{name} {value:g}")
    return "\n".join(lines) + "\n"
