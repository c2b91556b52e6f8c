"""A real Prometheus for the tests (Debian's `prometheus` package), and the dashboard's queries.

:class:`LocalPrometheus` runs ``prometheus`` on a free 127.0.0.1 port with a config and a TSDB
in a temp dir, scraping the given targets every second, and answers instant queries through its
HTTP API. :func:`dashboard_queries` lists every panel query of the Grafana dashboard beside the
manifests, with Grafana's variables replaced the way Grafana would fill them in.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from localkafka import free_ports

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "manifests" / "grafana" / "fraud-detector-dashboard.json"

# What Grafana substitutes for its built-in interval variables. With a 1 s scrape interval its
# $__rate_interval would be a few seconds; a minute leaves every rate() enough samples.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")

Sample = dict[str, Any]


class PanelQuery(NamedTuple):
    panel: str
    ref_id: str
    expr: str
    legend: str


def dashboard_queries(path: Path = DASHBOARD) -> list[PanelQuery]:
    """Every target of every panel (rows' nested panels included), variables filled in."""
    dashboard = json.loads(path.read_text())
    panels = []
    for panel in dashboard["panels"]:
        panels += [panel, *panel.get("panels", [])]
    queries = []
    for panel in panels:
        for target in panel.get("targets", []):
            queries.append(
                PanelQuery(
                    panel["title"],
                    target.get("refId", "?"),
                    fill_variables(target["expr"]),
                    target.get("legendFormat", ""),
                )
            )
    return queries


def fill_variables(expr: str) -> str:
    """``expr`` with Grafana's interval variables replaced; any other variable is an error, so a
    dashboard change that adds one makes the test say what to add here."""

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in GRAFANA_VARIABLES:
            raise AssertionError(f"dashboard variable ${name} in {expr!r}: add its test value")
        return GRAFANA_VARIABLES[name]

    return _VARIABLE.sub(replace, expr)


def prometheus_binary() -> str:
    """The prometheus binary; a clear failure (not a skip) when the package is missing."""
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").is_file() else None
    )
    if found is None:
        raise AssertionError(
            "prometheus is not installed: the monitoring test runs a real one. Install Debian's "
            "package (apt-get install -y prometheus; .ci/run does this)"
        )
    return found


class LocalPrometheus:
    """One Prometheus of one test: its own port, config, storage and log under ``root``."""

    def __init__(
        self, root: Path, targets: Sequence[str], labels: Mapping[str, str] | None = None
    ) -> None:
        self.root = root
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "prometheus.log"
        self.config_path = root / "prometheus.yml"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "fraud-worker",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": list(targets), "labels": dict(labels or {})}],
                }
            ],
        }
        self.config_path.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> LocalPrometheus:
        binary = prometheus_binary()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_until(lambda: self._status("/-/ready") == 200, "ready", timeout)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def query(self, expr: str) -> list[Sample]:
        """The instant vector ``expr`` evaluates to now (a scalar as one sample)."""
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        assert data["resultType"] == "vector", f"{expr}: {data['resultType']} is not a panel value"
        result: list[Sample] = data["result"]
        return result

    def wait_for_data(self, expr: str, timeout: float) -> list[Sample]:
        """Poll until ``expr`` returns at least one sample and every value is a number (NaN is
        what histogram_quantile of no observations gives: no data to draw)."""
        got: list[Sample] = []

        def has_data() -> bool:
            nonlocal got
            got = self.query(expr)
            return bool(got) and all(math.isfinite(float(s["value"][1])) for s in got)

        try:
            self.wait_until(has_data, f"data for {expr}", timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}; last result: {got}") from None
        return got

    def wait_until(self, check: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus: no {what} after {timeout:.0f}s")
            time.sleep(0.2)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None
