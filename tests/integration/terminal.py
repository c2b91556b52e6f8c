"""A real terminal for tests: a tmux window of a tmux server of the test's own.

The viewer's live view and ``make demo`` are checked as a person sees them: the test reads the
screen with ``tmux capture-pane`` and types with ``tmux send-keys``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable

import pytest

TMUX = shutil.which("tmux")
DEADLINE_S = 60.0
WIDTH, HEIGHT = 160, 45


class Terminal:
    """One tmux window of a tmux server of its own (``-L``), running one shell command."""

    def __init__(self, command: str) -> None:
        if TMUX is None:  # a terminal test without a terminal proves nothing: fail, never skip
            pytest.fail("tmux is not installed: scripts/prerequisites names or installs it")
        self._base = [TMUX, "-L", f"viewer-test-{uuid.uuid4().hex[:8]}", "-f", "/dev/null"]
        # The pane may start at tmux's default size and get its own a moment later, with
        # COLUMNS and LINES of the size it started with in the environment (which rich would
        # believe over the terminal): the command starts at the right size, without them.
        sized = (
            f'until [ "$(stty size)" = "{HEIGHT} {WIDTH}" ]; do sleep 0.1; done; '
            f"unset COLUMNS LINES; {command}"
        )
        self._tmux("new-session", "-d", "-s", "view", "-x", str(WIDTH), "-y", str(HEIGHT), sized)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            [*self._base, *args], capture_output=True, text=True, timeout=30, check=True
        )
        return done.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "view")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "view", *keys)

    def wait_for(self, done: Callable[[str], bool], what: str, timeout: float = DEADLINE_S) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if done(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen did not show {what} in {timeout:g}s:\n{shown}")
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run([*self._base, "kill-server"], capture_output=True, timeout=30, check=False)
