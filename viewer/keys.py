"""Single keys for the live view (``e`` evidence, ``q`` quit), read from the terminal.

The terminal is put in cbreak mode (keys arrive at once, are not echoed into the view; Ctrl-C
still interrupts) for as long as the view runs, and restored afterwards, also on errors. When
stdin is not a terminal (a pipe, a Kubernetes pod) there are no keys and nothing is changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import tty
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def keypresses(fd: int, on_key: Callable[[str], None]) -> Iterator[bool]:
    """Call ``on_key`` with each key typed on terminal ``fd``; yields whether keys are read."""
    if not os.isatty(fd):
        yield False
        return
    try:
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
    except (termios.error, OSError):  # not ours to change (e.g. a background job)
        yield False
        return
    loop = asyncio.get_running_loop()

    def read() -> None:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data:  # the terminal went away: stop listening rather than spin
            loop.remove_reader(fd)
            return
        for key in data.decode(errors="ignore"):
            on_key(key)

    loop.add_reader(fd, read)
    try:
        yield True
    finally:
        loop.remove_reader(fd)
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
