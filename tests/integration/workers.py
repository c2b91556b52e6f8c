"""Worker processes for the tests, started exactly as the StatefulSet starts its pods.

Each worker gets an ordinal name (``fraud-worker-N``), its own data dir and web port, and the
shared settings; ``faust -A app worker -l info`` runs as a child process with its log in a file.
:func:`run_process` runs the other programs (generator, viewer, operator commands) to their end.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[2]
FAUST = Path(sys.executable).parent / "faust"


class Finished(NamedTuple):
    code: int
    out: str
    err: str
    seconds: float


async def run_process(
    command: Sequence[str], env: Mapping[str, str], timeout: float = 120.0
) -> Finished:
    """Run ``command`` from the repository with ``env`` on top of this environment (and this
    checkout first on the import path) until it exits; fail if it runs past ``timeout``."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{command} still running after {timeout:.0f}s") from None
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode(), time.monotonic() - started)


class WorkerProcess:
    def __init__(self, ordinal: int, env: dict[str, str], root: Path, web_port: int) -> None:
        self.name = f"fraud-worker-{ordinal}"
        self.data_dir = root / self.name
        self.log_path = root / f"{self.name}.log"
        self.env = {
            **os.environ,
            **env,
            "POD_NAME": self.name,
            "DATA_DIR": str(self.data_dir),
            "WEB_PORT": str(web_port),
            "WEB_HOST": "127.0.0.1",
        }
        self.web_port = web_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(FAUST), "-A", "app", "worker", "-l", "info"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def get_or_none(self, path: str, timeout: float = 10.0) -> tuple[int, Any] | None:
        """Like :meth:`get`, or None while the web server is not up (it starts after recovery)."""
        try:
            return self.get(path, timeout)
        except (OSError, ValueError):
            return None

    def wait_ready(self, timeout: float) -> None:
        """Poll /ready until the worker has partitions and its tables are recovered."""
        self.wait_until(
            lambda: self.get_or_none("/ready") == (200, {"ready": True}), "ready", timeout
        )

    def metrics(self) -> dict[str, float]:
        """/metrics as {'name{labels}': value}."""
        status, text = self._get("/metrics", 10.0)
        if status != 200:  # as a refused connection: the caller polls again or fails
            raise OSError(f"{self.name}: /metrics answered {status}: {text[:200]}")
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def metric(self, name: str) -> float:
        """A metric's value from /metrics (0 when absent)."""
        return self.metrics().get(name, 0.0)

    def wait_metric(self, name: str, *, above: float, timeout: float) -> None:
        def check() -> bool:
            try:
                return self.metric(name) > above
            except OSError:
                return False

        self.wait_until(check, f"{name} > {above}", timeout)

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if not self.alive():
                raise AssertionError(f"{self.name} exited:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: not {what} after {timeout:.0f}s")
            time.sleep(0.2)

    def get(
        self, path: str, timeout: float = 10.0, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        """GET a path of the worker's web server: (status, decoded JSON)."""
        status, body = self._get(path, timeout, headers)
        return status, json.loads(body)

    def _get(
        self, path: str, timeout: float, headers: Mapping[str, str] | None = None
    ) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.web_port}{path}"
        request = urllib.request.Request(url, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def restart_timed(self, timeout: float) -> float:
        """Start again (same ordinal, same data dir); seconds until the worker is ready."""
        started = time.monotonic()
        self.start()
        self.wait_ready(timeout=timeout)
        return time.monotonic() - started

    def replayed_changelog(self, since: int = 0) -> int:
        """Changelog records this worker read to recover its active partitions (log text after
        ``since``), from the "Highwater - Active" and "Reading Starts At - Active" tables Faust
        logs: per partition, highwater minus the offset reading starts at."""
        tables: dict[str, dict[str, int]] = {}
        rows: dict[str, int] | None = None
        for line in self.log_text()[since:].splitlines():
            if line.startswith("+Highwater - Active") or line.startswith("+Reading Starts At - A"):
                rows = tables.setdefault(line[1:10], {})  # "Highwater" / "Reading S"
            elif rows is not None and line.startswith("|"):
                cells = [cell.strip() for cell in line.strip("|\n ").split("|")]
                if len(cells) == 3 and cells[1].isdigit():
                    rows[cells[1]] = int(cells[2])
            elif not line.startswith("+"):
                rows = None
        starts = tables.get("Reading S", {})
        highwaters = tables.get("Highwater", {})
        return sum(max(0, high - starts.get(p, -1)) for p, high in highwaters.items())

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no commit."""
        self._signal(signal.SIGKILL)

    def stop(self, timeout: float = 30.0) -> None:
        self._signal(signal.SIGTERM, timeout)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self, timeout: float) -> int:
        """Wait for the worker to stop by itself (a start-up error); its exit code."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running after {timeout:.0f}s:\n{self.log_text()[-3000:]}"
            ) from None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _signal(self, sig: int, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.process is not None
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)

    def wait_for_log(self, text: str, timeout: float) -> None:
        self.wait_until(lambda: text in self.log_text(), f"logging {text!r}", timeout)
