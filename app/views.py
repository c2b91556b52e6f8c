"""The worker's web endpoints on Faust's own web server (one per worker, DESIGN §5).

``/health`` (liveness), ``/ready`` (readiness: partitions assigned and tables recovered),
``/metrics`` (Prometheus text) and ``/pair/{SENDER:RECEIVER}`` (a pair's open windows, routed by
Faust to the worker that owns the key, so any worker can be asked) and ``/top``. With
``WEB_TOKEN`` set, ``/pair`` and ``/top`` (account totals) answer only a matching bearer token.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from typing import Any, TypeAlias

from faust.web import Request, Response, View

from app import models
from app.agents import detector, pair_windows
from app.app import app, settings
from app.metrics import prometheus_text
from app.windowing import NO_WATERMARK, PairWindows
from kafka_security import Secret

_Handler: TypeAlias = Callable[..., Awaitable[Response]]


def bearer_token_matches(authorization: str | None, token: Secret | None) -> bool:
    """Whether an ``Authorization`` header carries ``token`` as a bearer token (RFC 6750);
    always true when no token is set. The comparison takes the same time wherever it differs."""
    if token is None:
        return True
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # bytes: compare_digest refuses a str that is not ASCII, and a header may hold anything
    given = credentials.strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, token.reveal().encode())


def requires_token(handler: _Handler) -> _Handler:
    """Answer 401 unless the request carries WEB_TOKEN; checked before Faust's table routing,
    which forwards the request's headers (the token among them) to the worker owning the key."""

    @wraps(handler)
    async def guarded(view: View, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not bearer_token_matches(request.headers.get("Authorization"), settings.web_token):
            return view.error(
                401,
                "this endpoint needs the workers' WEB_TOKEN as a bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="fraud-detector"'},
            )
        return await handler(view, request, *args, **kwargs)

    return guarded


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
        assigned = [
            tp for tp in app.assignor.assigned_actives() if tp.topic == settings.transactions_topic
        ]
        lag: dict[str, float] = {}
        for tp in assigned:
            highwater = app.consumer.highwater(tp)
            if highwater is not None and highwater >= 0:
                lag[str(tp.partition)] = highwater - detector.next_offset.get(tp.partition, 0)
        watermarks = detector.watermarks()
        gauges: dict[str, tuple[str, float | Mapping[str, float]]] = {
            "fraud_assigned_partitions": ("Input partitions this worker owns", len(assigned)),
            "fraud_consumer_lag": ("Input records not processed yet, by partition", lag),
            "fraud_open_pairs": ("Pairs with open windows (state size)", detector.open_pairs()),
            "fraud_input_watermark_seconds": (
                "Each owned input partition's own watermark (max event time - out-of-orderness)",
                watermarks["input"],
            ),
            "fraud_input_idle": (
                "1 if the owned input partition is idle: out of the minimum of re-keyed state",
                watermarks["idle"],
            ),
            "fraud_state_watermark_seconds": (
                "The watermark each owned partition's windows are closed up to (lowest route)",
                watermarks["state"],
            ),
            "fraud_threshold_dollars": (
                "The alert threshold in force",
                detector.spec.threshold_cents / 100,
            ),
        }
        text = prometheus_text(detector.counts, detector.latency, gauges)
        return self.text(text, content_type="text/plain")


@app.page("/pair/{pair}")
class Pair(View):
    @requires_token
    @app.table_route(table=pair_windows, match_info="pair")  # type: ignore[arg-type]
    async def get(self, request: Request, **params: Any) -> Response:
        return self.json(pair_report(params["pair"]))


@app.page("/top")
class Top(View):
    """Pairs closest to the threshold: this worker's, merged with every other worker's."""

    @requires_token
    async def get(self, request: Request) -> Response:
        n = max(1, min(int(request.query.get("n", "20")), 1000))
        rows = local_top(n)
        if "local" not in request.query:
            own = str(app.conf.canonical_url).rstrip("/")
            for url in app.router.tables_metadata():
                if str(url).rstrip("/") == own:
                    continue
                async with app.http_client.get(
                    f"{url}/top?local=1&n={n}", headers=settings.web_headers
                ) as response:
                    if response.status != 200:  # e.g. 401: that worker has another WEB_TOKEN
                        return self.error(
                            502, f"the worker at {url} answered {response.status} to /top"
                        )
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
    watermark = NO_WATERMARK if clock is None else detector.state_watermark(clock, state.route)
    if watermark > NO_WATERMARK:  # none yet: a re-keyed partition some input still holds back
        report["watermark"] = models.rfc3339_ms(watermark)
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
