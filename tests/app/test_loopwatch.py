"""A worker whose event loop stops turning exits with every thread's stack
(app.runtime.loopwatch)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from app.runtime.loopwatch import LoopWatch, watch_loop


def test_a_loop_that_beats_is_never_blocked() -> None:
    watch = LoopWatch(limit=3.0, every=1.0)
    assert not any(watch.blocked(float(t), beat=float(t)) for t in range(10))


def test_a_loop_without_a_beat_for_the_limit_is_blocked() -> None:
    watch = LoopWatch(limit=3.0, every=1.0)
    looks = [watch.blocked(float(t), beat=0.0) for t in range(5)]
    assert looks == [False, False, False, True, True]


def test_nothing_is_watched_before_the_first_beat() -> None:
    watch = LoopWatch(limit=3.0, every=1.0)
    assert not any(watch.blocked(float(t), beat=None) for t in range(10))


def test_a_process_stopped_whole_counts_only_the_watchdog_s_own_time() -> None:
    watch = LoopWatch(limit=3.0, every=1.0)
    assert not watch.blocked(0.0, beat=0.0)
    assert not watch.blocked(100.0, beat=0.0)  # SIGSTOP for 100 s: 2 s counted
    assert watch.blocked(101.0, beat=0.0)  # still no beat a second after: blocked


def test_a_beat_after_a_still_spell_starts_the_count_again() -> None:
    watch = LoopWatch(limit=3.0, every=1.0)
    assert not any(watch.blocked(float(t), beat=0.0) for t in range(3))
    assert not watch.blocked(3.0, beat=2.5)
    assert not any(watch.blocked(float(t), beat=2.5) for t in range(4, 6))


def blocking_call_in_a_batch() -> None:
    time.sleep(1.5)  # what blocks the loop: a call that never yields


async def test_a_blocked_loop_exits_the_worker_with_the_blocking_call_named(
    tmp_path: Path,
) -> None:
    beats: list[float] = []
    exited = threading.Event()
    codes: list[int] = []

    async def heartbeat() -> None:
        while True:
            beats.append(time.monotonic())
            await asyncio.sleep(0.02)

    beating = asyncio.ensure_future(heartbeat())
    with (tmp_path / "log").open("w+") as log:
        watch_loop(
            lambda: beats[-1] if beats else None,
            exited.is_set,
            LoopWatch(limit=0.5, every=0.05),
            out=log,
            exit=lambda code: (codes.append(code), exited.set()),
        )
        await asyncio.sleep(0.8)  # a loop that turns past the limit is left alone
        assert codes == []
        blocking_call_in_a_batch()
        beating.cancel()
        assert exited.wait(timeout=5)
        log.seek(0)
        text = log.read()
    assert codes == [1]
    assert "the event loop has not run for" in text
    assert "blocking_call_in_a_batch" in text  # the stack names the call that blocks
