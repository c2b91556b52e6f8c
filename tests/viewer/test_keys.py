"""Single keys for the live view (viewer.keys), on a pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import pty
import termios

from viewer.keys import keypresses


async def test_keys_arrive_one_by_one_unechoed_and_the_terminal_is_restored() -> None:
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        keys: list[str] = []
        two = asyncio.Event()

        def on_key(key: str) -> None:
            keys.append(key)
            if len(keys) == 2:
                two.set()

        with keypresses(slave, on_key) as reading:
            assert reading
            local_modes = termios.tcgetattr(slave)[3]
            assert not local_modes & termios.ICANON  # no need to press Enter
            assert not local_modes & termios.ECHO  # keys do not land in the view
            assert local_modes & termios.ISIG  # Ctrl-C still interrupts
            os.write(master, b"eq")  # no newline: cbreak hands over each key at once
            await asyncio.wait_for(two.wait(), timeout=10)

        assert keys == ["e", "q"]
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


async def test_without_a_terminal_there_are_no_keys() -> None:
    read_end, write_end = os.pipe()
    try:
        with keypresses(read_end, lambda key: None) as reading:
            assert not reading
    finally:
        os.close(read_end)
        os.close(write_end)
