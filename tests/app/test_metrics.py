"""The Prometheus text of /metrics."""

from __future__ import annotations

from app.metrics import Histogram, prometheus_text


def test_histogram_buckets_are_cumulative() -> None:
    histogram = Histogram((0.01, 0.1))
    for value in (0.005, 0.05, 0.05, 3.0):
        histogram.observe(value)
    lines = histogram.lines("x_seconds", "help")
    assert 'x_seconds_bucket{le="0.01"} 1' in lines
    assert 'x_seconds_bucket{le="0.1"} 3' in lines
    assert 'x_seconds_bucket{le="+Inf"} 4' in lines
    assert "x_seconds_count 4" in lines
    assert "x_seconds_sum 3.105000" in lines


def test_counters_labels_and_gauges() -> None:
    text = prometheus_text(
        {"received": 7, "alerts_window_closed": 2, "dlq_late": 1},
        Histogram(),
        {"fraud_consumer_lag": ("lag", {"1": 5, "0": 0}), "fraud_open_pairs": ("pairs", 3)},
    )
    assert "fraud_records_received_total 7\n" in text
    assert "fraud_late_total 0\n" in text
    assert 'fraud_alerts_total{kind="window_closed"} 2\n' in text
    assert 'fraud_dead_letters_total{reason="late"} 1\n' in text
    assert 'fraud_consumer_lag{partition="0"} 0\nfraud_consumer_lag{partition="1"} 5\n' in text
    assert "fraud_open_pairs 3\n" in text
    assert "# TYPE fraud_processing_latency_seconds histogram" in text


def test_every_alert_kind_and_dead_letter_reason_is_served_from_the_start() -> None:
    # rate() misses the first increase of a series it never scraped before; a worker that has
    # raised nothing yet serves each at 0, and the dashboard shows 0 rather than "No data"
    from app.models import THRESHOLD_CROSSED, WINDOW_CLOSED
    from app.parsing import REASONS

    text = prometheus_text({"dlq_late": 3}, Histogram(), {})
    for kind in (THRESHOLD_CROSSED, WINDOW_CLOSED):
        assert f'fraud_alerts_total{{kind="{kind}"}} 0\n' in text
    for reason in REASONS:
        count = 3 if reason == "late" else 0
        assert f'fraud_dead_letters_total{{reason="{reason}"}} {count}\n' in text
