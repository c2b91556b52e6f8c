"""A worker whose event loop stops turning exits, with every thread's stack in its log.

Everything that watches the worker from inside (the stall guard's heartbeat, the progress
watch, the web server that answers /ready and /health) runs on its event loop, while Faust's
consumer runs in a thread of its own and keeps the group's heartbeat going. A call that blocks
the loop therefore leaves a member that holds its partitions, processes nothing and answers
nothing, for as long as the call lasts. Seen in a 10-minute nemesis run: a worker's log ended
after its first batch of an assignment, its three partitions stayed uncommitted with records
waiting for five minutes, its /ready timed out, and it did not answer SIGTERM; the broker kept
it in the group until it was killed.

A thread of its own watches the loop's heartbeat (app.agents.heartbeat, every half second). A
loop with no beat for LOOP_STALL_S seconds is blocked: the watchdog writes every thread's stack
to stderr (the log), the blocked call named in it, and exits without the clean-stop mark. The
next start (the StatefulSet's, or a supervisor's) rebuilds the tables from the changelog, as
after a kill -9 (app.runtime.localstate). It counts only time it saw itself: a process stopped
whole (SIGSTOP, a paused VM) stops the watchdog too, and the stall guard handles that case. It
stands down once the worker stops, where STOP_TIMEOUT bounds the wait (app.app).
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

LOOP_STALL_S = 60.0  # no heartbeat for this long: the loop is blocked
WATCH_EVERY_S = 1.0  # between two looks of the watchdog


class LoopWatch:
    """The rule: feed it each look's time and the loop's last beat; it says when the loop has
    been still for ``limit`` seconds of the watchdog's own time."""

    def __init__(self, limit: float = LOOP_STALL_S, every: float = WATCH_EVERY_S) -> None:
        self.limit, self.every = limit, every
        self.beat: float | None = None  # the last beat seen
        self.still = 0.0  # seconds the watchdog ran with no new beat
        self.looked: float | None = None  # the time of the last look

    def blocked(self, now: float, beat: float | None) -> bool:
        elapsed = 0.0 if self.looked is None else now - self.looked
        self.looked = now
        if beat is None or beat != self.beat:  # not started yet, or the loop turned
            self.beat, self.still = beat, 0.0
            return False
        # a look far later than asked for: the whole process was stopped meanwhile, and only
        # the watchdog's own interval counts
        self.still += min(elapsed, 2 * self.every)
        return self.still >= self.limit


def watch_loop(
    last_beat: Callable[[], float | None],
    stopping: Callable[[], bool],
    watch: LoopWatch | None = None,
    *,
    out: IO[Any] | None = None,
    exit: Callable[[int], Any] = os._exit,
) -> threading.Thread:
    """Start the watchdog thread (a daemon): ``last_beat`` is the loop's last heartbeat
    (monotonic seconds, None before the first), ``stopping`` true once the worker stops."""
    rule = watch or LoopWatch()

    def run() -> None:
        while not stopping():
            time.sleep(rule.every)
            if not stopping() and rule.blocked(time.monotonic(), last_beat()):
                stream = out or sys.__stderr__
                assert stream is not None
                print(
                    f"fraud-detector: the event loop has not run for {rule.still:.0f}s "
                    "(a call blocks it): exiting; the next start rebuilds the local tables "
                    "from the changelog. Every thread's stack:",
                    file=stream,
                    flush=True,
                )
                faulthandler.dump_traceback(file=stream, all_threads=True)
                exit(1)
                return

    thread = threading.Thread(target=run, name="loop-watchdog", daemon=True)
    thread.start()
    return thread
