"""Operator commands on the Faust app (``faust -A app COMMAND``), next to Faust's own ``tables``.

``pair`` and ``top`` ask the live cluster through any worker's web port (the worker routes to the
owner of the key); ``dump-store`` reads a stopped worker's RocksDB files offline (what an operator
finds on a volume); ``set-threshold`` changes the threshold of every running worker;
``create-topics`` creates the pipeline's topics (the topics Job on Kubernetes).
Every command prints a table for people and ``--json`` for programs.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from faust.cli import AppCommand, argument, option

from app import models
from app.app import app, settings
from app.control import publish_threshold, threshold_cents
from app.errors import KafkaUnavailable, SettingsError
from app.topics import TopicError, create_pipeline_topics
from app.watermark import PartitionClock
from app.windowing import KEYED, REKEYED, PairWindows

JSON = option("--json", "as_json", is_flag=True, default=False, help="Print JSON for programs.")
URL = option(
    "--url",
    default=None,
    help="A worker's web address [env: WORKER_URL; default: http://WEB_HOST:WEB_PORT].",
)


@app.command(argument("sender"), argument("receiver"), URL, JSON)
async def pair(
    self: AppCommand, sender: str, receiver: str, url: str | None, as_json: bool
) -> None:
    """Open windows of one (sender, receiver) pair, from whichever worker owns it."""
    report = await _get(url, f"/pair/{sender}:{receiver}")
    if as_json:
        print(json.dumps(report, indent=2))
        return
    windows = report.get("windows", [])
    if not windows:
        print(f"{sender} -> {receiver}: no open window")
        return
    print(f"{sender} -> {receiver}  (watermark {report.get('watermark', '?')})")
    for w in windows:
        mark = "ALERTED" if w["alerted"] else ""
        span = f"{w['window_start']} - {w['window_end']}"
        print(f"  {span}  ${w['total']:>14}  {w['count']:>5} tx  {mark}")


@app.command(option("--n", default=20, type=int, help="How many pairs."), URL, JSON)
async def top(self: AppCommand, n: int, url: str | None, as_json: bool) -> None:
    """The pairs closest to the threshold, across all workers."""
    rows = (await _get(url, f"/top?n={n}"))["pairs"]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(
            f"{row['pair']:<30} ${row['total']:>14} of ${row['threshold']}  {row['count']:>5} tx  "
            f"window {row['window_start']}"
        )


@app.command(
    option(
        "--data-dir",
        required=True,
        type=click.Path(exists=True, file_okay=False),
        help="A stopped worker's DATA_DIR.",
    ),
    JSON,
)
async def dump_store(self: AppCommand, data_dir: str, as_json: bool) -> None:
    """Read a stopped worker's RocksDB state offline: watermarks and open windows per pair."""
    tables = Path(data_dir) / "v1" / "tables"
    databases = sorted(tables.glob("pair-windows-*.db"))
    if not databases:
        raise SystemExit(f"dump-store: no pair-windows-*.db under {tables}")
    out = sys.stdout
    for key, value in _progress(_read_databases(databases), total=len(databases)):
        row = _describe(key, value)
        if as_json:
            out.write(json.dumps(row) + "\n")
        elif row["kind"] == "clock":
            marks = ", ".join(f"{route} {mark}" for route, mark in row["closed"].items())
            out.write(f"partition {row['partition']}: closed up to {marks or 'nothing yet'}\n")
        else:
            for w in row["windows"]:
                out.write(
                    f"{row['pair']:<30} {w['window_start']}  ${w['total']:>14}  "
                    f"{w['count']:>5} tx\n"
                )


@app.command(argument("dollars"))
async def set_threshold(self: AppCommand, dollars: str) -> None:
    """Change the alert threshold of every running worker (recorded in each alert)."""
    try:
        cents = threshold_cents(dollars)
    except SettingsError as exc:
        raise SystemExit(f"set-threshold: {exc}") from None
    try:
        await publish_threshold(settings, cents)
    except (KafkaUnavailable, TopicError) as exc:
        raise SystemExit(f"set-threshold: {exc}") from None
    print(f"threshold set to {models.dollars(cents)} on {settings.control_topic}")


@app.command()
async def create_topics(self: AppCommand) -> None:
    """Create the input, alert and dead-letter topics (TOPIC_PARTITIONS partitions each) if
    they do not exist, with the Kafka login of the worker; idempotent."""
    try:
        created = await create_pipeline_topics(settings)
    except (KafkaUnavailable, TopicError) as exc:
        print(f"create-topics: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    for name, new in created.items():
        state = "created" if new else "exists"
        print(f"topic {name}: {settings.partitions} partitions ({state})")


async def _get(url: str | None, path: str) -> Any:
    base = url or os.environ.get("WORKER_URL") or f"http://{settings.web_host}:{settings.web_port}"
    # the workers' WEB_TOKEN / WEB_TOKEN_FILE, read by the same settings as theirs
    request = urllib.request.Request(base.rstrip("/") + path, headers=settings.web_headers)

    def fetch() -> Any:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    try:
        return await asyncio.to_thread(fetch)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            given = "a wrong token" if settings.web_token else "no token"
            raise SystemExit(
                f"the worker at {base} refused {given} (401): set WEB_TOKEN or WEB_TOKEN_FILE "
                "to the workers' token"
            ) from None
        raise SystemExit(f"the worker at {base} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SystemExit(f"no worker answers at {base}: {exc}") from None


def _read_databases(databases: list[Path]) -> Iterator[tuple[bytes, bytes]]:
    from rocksdict import AccessType, Options, Rdict

    for path in databases:
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            for key, value in db.items():
                # raw bytes only; __faust... is Faust's own changelog offset
                if isinstance(key, bytes) and isinstance(value, bytes) and key[:7] != b"__faust":
                    yield key, value
        finally:
            db.close()


ROUTE_NAMES = {KEYED: "keyed", REKEYED: "re-keyed"}  # in the dump: whose windows a mark closed


def _describe(key: bytes, value: bytes) -> dict[str, Any]:
    name = key.decode()
    data = models.decode(value)
    if name.startswith("#clock:"):
        clock = PartitionClock.from_json(data)
        closed = {ROUTE_NAMES[route]: _time(mark) for route, mark in sorted(clock.closed.items())}
        return {"kind": "clock", "partition": clock.partition, "closed": closed}
    state = PairWindows.from_json(data)
    from app.agents import detector

    return {
        "kind": "pair",
        "pair": name,
        "partition": state.partition,
        "windows": [
            {
                "window_start": models.rfc3339_ms(w.start_ms),
                "total": models.dollars(w.total),
                "count": w.transfers,
            }
            for w in state.windows(detector.spec)
        ],
    }


def _time(ms: int) -> str | None:
    return models.rfc3339_ms(ms) if ms > -(2**61) else None


def _progress(items: Iterator[Any], total: int) -> Iterator[Any]:
    """Rich progress on a terminal's stderr; nothing when it is not a terminal."""
    if not sys.stderr.isatty():
        yield from items
        return
    from rich.progress import Progress

    with Progress(transient=True, console=None) as progress:
        task = progress.add_task("reading state", total=None)
        for item in items:
            progress.advance(task)
            yield item
