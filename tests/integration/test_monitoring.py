"""The Grafana dashboard against a real Prometheus scraping a real worker: every panel has data.

Prometheus (Debian's package) scrapes the worker's /metrics every second, with the target labels
the prometheus-operator's ServiceMonitor gives (`pod`, `namespace`); the worker processes
transactions with laundering bursts, malformed and late records; then every query of every panel
of manifests/grafana/fraud-detector-dashboard.json is evaluated through Prometheus's HTTP API.
"""

from __future__ import annotations

import re
from pathlib import Path

from generator import GeneratorConfig
from tests.integration.pipeline import TIMEOUT, Pipeline, expect
from tests.integration.prometheus import (
    LocalPrometheus,
    PanelQuery,
    Sample,
    dashboard_queries,
    prometheus_binary,
)

INPUT = GeneratorConfig(
    count=1500,
    accounts=30,
    seed=16,
    mean_gap_ms=400,
    scenarios=4,
    malformed=0.03,
    out_of_order=0.01,
    out_of_order_max_ms=900_000,
)
# Seconds for a query to show what Prometheus has scraped: a few scrapes at 1 s.
QUERY_TIMEOUT = 60.0


async def test_every_dashboard_panel_has_data(pipeline: Pipeline, tmp_path: Path) -> None:
    prometheus_binary()  # fails at once, saying how to install it, when it is missing
    queries = dashboard_queries()
    assert len({query.panel for query in queries}) >= 7, "the dashboard's panels were not found"
    worker = pipeline.worker()
    worker.wait_ready(timeout=TIMEOUT)
    root = tmp_path / "prometheus"
    root.mkdir()
    prometheus = LocalPrometheus(
        root,
        [f"127.0.0.1:{worker.web_port}"],
        {"pod": worker.name, "namespace": "fraud-test"},
    )
    try:
        prometheus.start()
        # A scrape before any input: the counters' rise is inside every rate() window.
        (up,) = prometheus.wait_for_data("fraud_records_received_total", QUERY_TIMEOUT)
        assert up["value"][1] == "0"

        written = await pipeline.send(INPUT)
        expected = expect(written)
        assert expected.closed, "the input raises alerts"
        assert "late" in expected.dead.values() and len(set(expected.dead.values())) >= 2
        await pipeline.wait_for(expected)

        results: dict[PanelQuery, list[Sample]] = {}
        for query in queries:
            results[query] = prometheus.wait_for_data(query.expr, QUERY_TIMEOUT)
    finally:
        prometheus.stop()

    for query, samples in results.items():
        values = ", ".join(f"{_legend(query, s)}={float(s['value'][1]):g}" for s in samples)
        print(f"{query.panel} [{query.ref_id}] {query.expr}: {values}")
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", query.legend):
            assert all(label in s["metric"] for s in samples), (
                f"{query.panel}: legend {query.legend!r} names {label}, absent from {samples}"
            )

    by_expr = {query.expr: samples for query, samples in results.items()}

    def value(expr: str) -> float:
        (sample,) = by_expr[expr]
        return float(sample["value"][1])

    assert value("sum(rate(fraud_transactions_processed_total[1m]))") > 0
    assert value("sum(rate(fraud_records_received_total[1m]))") > 0
    assert value("max(fraud_threshold_dollars)") == 10000
    assert value("fraud_assigned_partitions") == 8
    # Every kind and reason was scraped at 0 before the input: each rise shows in its rate.
    kinds = {s["metric"]["kind"] for s in by_expr[_expr(results, "Alerts")] if _positive(s)}
    assert kinds == {"threshold_crossed", "window_closed"}
    reasons = {
        s["metric"]["reason"] for s in by_expr[_expr(results, "Dead letters")] if _positive(s)
    }
    assert reasons == set(expected.dead.values())


def _expr(results: dict[PanelQuery, list[Sample]], title: str) -> str:
    (query,) = [query for query in results if query.panel.startswith(title)]
    return query.expr


def _positive(sample: Sample) -> bool:
    return float(sample["value"][1]) > 0


def _legend(query: PanelQuery, sample: Sample) -> str:
    labels = sample["metric"]
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), "?"), query.legend)
