"""The sample Grafana dashboard beside the manifests queries metrics the worker really serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.metrics import COUNTERS, LABELLED, Histogram, prometheus_text

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "manifests" / "grafana" / "fraud-detector-dashboard.json"
)


def test_every_queried_metric_is_served() -> None:
    served = prometheus_text(
        {"alerts_window_closed": 1, "dlq_late": 1},
        Histogram(),
        {
            "fraud_assigned_partitions": ("", 8),
            "fraud_consumer_lag": ("", {"0": 0}),
            "fraud_open_pairs": ("", 0),
            "fraud_threshold_dollars": ("", 10000),
        },
    )
    names = {line.split("{")[0].split(" ")[0] for line in served.splitlines() if line[:1] != "#"}
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bfraud_[a-z_]+", target["expr"])
    }
    assert queried and queried <= names, queried - names
    assert {name for name, _ in COUNTERS.values()} | {n for _, n, _, _ in LABELLED} <= names


def test_every_panel_has_a_query_for_the_prometheus_test() -> None:
    # tests/integration/test_monitoring.py evaluates these against a real Prometheus
    from tests.integration.prometheus import dashboard_queries, fill_variables

    dashboard = json.loads(DASHBOARD.read_text())
    assert {query.panel for query in dashboard_queries(DASHBOARD)} == {
        panel["title"] for panel in dashboard["panels"]
    }
    assert fill_variables("rate(x[$__rate_interval])") == "rate(x[1m])"
    assert fill_variables("rate(x[${__rate_interval}])") == "rate(x[1m])"
    with pytest.raises(AssertionError, match=r"\$job"):
        fill_variables('up{job="$job"}')
