"""Input records that never reached the worker are read again (app.agents._follow_on)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from weakref import WeakSet

import pytest
from faust.types import TP

from app import agents
from app.runtime.watches import Gaps

TOPIC = TP("transactions", 2)


class Message(SimpleNamespace):
    """Hashable, as Faust's messages are (they live in a WeakSet)."""

    __hash__ = object.__hash__


def message(offset: int) -> Any:
    return Message(tp=TOPIC, offset=offset, acked=False)


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> Any:
    sought: list[tuple[TP, int, int]] = []

    async def reread(tp: TP, first: int, until: int) -> None:
        sought.append((tp, first, until))

    fake = SimpleNamespace(
        _committed_offset={TOPIC: 43}, _unacked_messages=WeakSet(), reread=reread
    )
    monkeypatch.setattr(agents.app, "_consumer", fake)  # what app.consumer returns
    monkeypatch.setattr(agents, "gaps", Gaps())
    fake.sought = sought
    return fake


async def test_a_confirmed_gap_is_read_again_and_the_records_ahead_wait(
    consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def skipped(tp: TP, offset: int, since: int) -> tuple[int, int]:
        return 43, offset - 1  # the broker holds them

    monkeypatch.setattr(agents, "_skipped", skipped)
    first, ahead = message(1107), message(1108)
    consumer._unacked_messages.update([first, ahead])
    assert not await agents._follow_on(first)
    assert consumer.sought == [(TOPIC, 43, 1107)]
    assert not await agents._follow_on(ahead)
    for held in (first, ahead):  # Faust's ack skips them: nothing committed past the gap
        assert held.acked and held not in consumer._unacked_messages
    assert await agents._follow_on(message(43))  # read again from the first missing one
    assert await agents._follow_on(message(44))


async def test_a_gap_the_broker_does_not_confirm_is_processed(
    consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def skipped(tp: TP, offset: int, since: int) -> None:
        return None  # transaction markers, or a commit the consumer had not seen

    monkeypatch.setattr(agents, "_skipped", skipped)
    record = message(45)
    assert await agents._follow_on(record)
    assert not record.acked and consumer.sought == []
