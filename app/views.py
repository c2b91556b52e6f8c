"""The worker's web endpoints on Faust's own web server (one per worker, DESIGN §5).

``/health`` (liveness), ``/ready`` (readiness: partitions assigned and tables recovered),
``/metrics`` (Prometheus text) and ``/pair/{SENDER:RECEIVER}`` (a pair's open windows, routed by
Faust to the worker that owns the key, so any worker can be asked).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.web import Request, Response, View

from app import models
from app.agents import detector, pair_windows
from app.app import app
from app.windowing import PairWindows


@app.page("/health")
class Health(View):
    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok"})


@app.page("/ready")
class Ready(View):
    async def get(self, request: Request) -> Response:
        recovery = app.tables.recovery  # type: ignore[attr-defined]  # on the concrete manager
        ready = (
            not app.rebalancing
            and not recovery.in_recovery
            and recovery.completed.is_set()
            and bool(app.assignor.assigned_actives())
        )
        return self.json({"ready": ready}, status=200 if ready else 503)


@app.page("/metrics")
class Metrics(View):
    async def get(self, request: Request) -> Response:
        return self.text(prometheus_text(detector.counts), content_type="text/plain")


@app.page("/pair/{pair}")
class Pair(View):
    @app.table_route(table=pair_windows, match_info="pair")  # type: ignore[arg-type]
    async def get(self, request: Request, **params: Any) -> Response:
        return self.json(pair_report(params["pair"]))


@app.page("/top")
class Top(View):
    """Pairs closest to the threshold: this worker's, merged with every other worker's."""

    async def get(self, request: Request) -> Response:
        n = max(1, min(int(request.query.get("n", "20")), 1000))
        rows = local_top(n)
        if "local" not in request.query:
            own = str(app.conf.canonical_url).rstrip("/")
            for url in app.router.tables_metadata():
                if str(url).rstrip("/") == own:
                    continue
                async with app.http_client.get(f"{url}/top?local=1&n={n}") as response:
                    rows += (await response.json())["pairs"]
        rows.sort(key=lambda row: (-int(row["total_cents"]), row["pair"]))
        return self.json({"pairs": rows[:n]})


def local_top(n: int) -> list[dict[str, Any]]:
    """This worker's ``n`` pairs with the largest open window."""
    best: list[tuple[int, str, Any]] = []
    for key, value in pair_windows.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name.startswith("#"):
            continue
        state = PairWindows.from_json(models.decode(value))
        for window in state.windows(detector.spec):
            best.append((window.total, name, window))
    best.sort(key=lambda row: (-row[0], row[1]))
    seen: set[str] = set()
    rows = []
    for total, name, window in best:
        if name in seen:
            continue  # a pair's largest window only
        seen.add(name)
        rows.append(
            {
                "pair": name,
                "total_cents": total,
                "total": models.dollars(total),
                "count": window.transfers,
                "window_start": models.rfc3339_ms(window.start_ms),
                "threshold": models.dollars(detector.spec.threshold_cents),
            }
        )
        if len(rows) == n:
            break
    return rows


def pair_report(pair: str) -> dict[str, Any]:
    """The pair's open windows as this worker's state has them."""
    stored = pair_windows.get(pair)
    report: dict[str, Any] = {"pair": pair, "windows": []}
    if stored is None:
        return report
    state = PairWindows.from_json(models.decode(stored))
    spec = detector.spec
    clock = detector.clocks.get(state.partition)
    report["partition"] = state.partition
    if clock is not None:
        report["watermark"] = models.rfc3339_ms(max(clock.closed, spec.floor(clock.source)))
    report["windows"] = [
        {
            "window_start": models.rfc3339_ms(w.start_ms),
            "window_end": models.rfc3339_ms(w.start_ms + spec.size_ms),
            "total": models.dollars(w.total),
            "count": w.transfers,
            "alerted": w.start_ms in state.crossed,
        }
        for w in state.windows(spec)
    ]
    return report


_METRICS = {
    "received": ("fraud_records_received_total", "Input records read"),
    "processed": ("fraud_transactions_processed_total", "Transactions added to windows"),
    "late": ("fraud_late_total", "Transactions whose windows had all closed"),
    "duplicates_skipped": ("fraud_duplicates_skipped_total", "Replayed records recognised"),
}


def prometheus_text(counts: Mapping[str, int]) -> str:
    lines = []
    for key, (name, help_text) in _METRICS.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        lines.append(f"{name} {counts.get(key, 0)}")
    for prefix, name, label, help_text in (
        ("alerts_", "fraud_alerts_total", "kind", "Alerts written to the fraud topic"),
        ("dlq_", "fraud_dead_letters_total", "reason", "Records written to the dead-letter topic"),
    ):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        for key in sorted(k for k in counts if k.startswith(prefix)):
            lines.append(f'{name}{{{label}="{key.removeprefix(prefix)}"}} {counts[key]}')
    return "\n".join(lines) + "\n"
