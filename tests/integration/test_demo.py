"""`make demo` as a person runs it: in a terminal, alerts on the screen, Ctrl-C stops it all.

The demo runs on a broker, ports and run dir of its own (DEMO_RUN, DEMO_WEB_PORT, KAFKA_PORT),
so it disturbs no demo of a developer. Every process it starts inherits a marker variable,
which is how the test finds what is left after Ctrl-C. The seconds from `make demo` to the first
alert on the screen go to .run/demo-report.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from localkafka import free_ports

from tests.integration.terminal import Terminal

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / ".run" / "demo-report.json"
FIRST_ALERT_S = 180.0  # the broker's first start in a fresh clone included
STOP_S = 60.0


def marked(marker: str) -> dict[int, str]:
    """The live processes whose environment holds ``DEMO_MARK=marker``: pid -> command line."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"DEMO_MARK={marker}".encode() not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if "\nState:\tZ" in (proc / "status").read_text():  # exited, not yet reaped
                continue
            found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def test_make_demo_shows_alerts_and_ctrl_c_leaves_no_process(
    tmp_path: Path, terminal_factory: Callable[[str], Terminal]
) -> None:
    marker = uuid.uuid4().hex
    kafka_port, controller_port = free_ports(2)
    env = {
        "DEMO_MARK": marker,
        "DEMO_RUN": str(tmp_path / "run"),
        "DEMO_WEB_PORT": str(free_ports(2, consecutive=True)[0]),
        "KAFKA_PORT": str(kafka_port),
        "KAFKA_CONTROLLER_PORT": str(controller_port),
    }
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    started = time.monotonic()
    # the pane's shell traps INT (a non-interactive sh would die of the Ctrl-C with make):
    # it outlives the demo to show how it ended; a trap, unlike an ignore, is not inherited
    terminal = terminal_factory(
        f"trap : INT; env {assignments} make -C {shlex.quote(str(ROOT))} --no-print-directory"
        " demo; echo demo exited with $?; sleep 600"
    )
    try:
        terminal.wait_for(
            lambda shown: re.search(r"\b[1-9][0-9]* cases?\b", shown) is not None,
            "an alert",
            timeout=FIRST_ALERT_S,
        )
        first_alert_s = time.monotonic() - started
        running = list(marked(marker).values())
        assert sum("faust -A app worker" in line for line in running) == 2, running
        assert any("-m generator" in line for line in running), running
        assert any("-m viewer" in line for line in running), running
        assert any("kafka.Kafka" in line for line in running), running

        terminal.keys("C-c")
        screen = terminal.wait_for(lambda shown: "demo exited with" in shown, "the demo's end")
        assert "demo exited with 130" in screen, screen  # the exit status of a Ctrl-C
        deadline = time.monotonic() + STOP_S
        while (left := marked(marker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"left running {STOP_S:g}s after Ctrl-C: {list(left.values())}"
    finally:
        for pid in marked(marker):  # never leave a demo behind, even when the test fails
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps({"first_alert_on_screen_s": round(first_alert_s, 1)}) + "\n")
