"""The generator shows a progress bar when stderr is a terminal, and nothing extra when not."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time


def run(stderr_tty: bool) -> str:
    """Run a paced generator to stdout; return what it wrote on stderr."""
    args = [sys.executable, "-m", "generator", "--stdout", "--count", "300", "--rate", "300"]
    if not stderr_tty:
        result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
        return result.stderr
    leader, follower = pty.openpty()
    with subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=follower) as process:
        os.close(follower)
        chunks = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: the generator has exited
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=30) == 0
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_a_live_progress_bar() -> None:
    screen = run(stderr_tty=True)
    counts = set(re.findall(r"(\d+)/(?:300|…)", screen))  # narrow terminals cut "/300"
    assert len(counts) >= 2, screen  # the bar's count, redrawn while records go out
    assert "\x1b[" in screen  # drawn with terminal control sequences
    assert "sent 300 records" in screen


def test_a_pipe_gets_only_the_summary() -> None:
    text = run(stderr_tty=False)
    assert "\x1b[" not in text
    assert len(text.strip().splitlines()) == 1
