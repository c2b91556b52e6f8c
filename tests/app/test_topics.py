"""A worker that starts while Kafka is briefly down waits for it (app.topics): a broker
restarting, or the worker restarted in place during the outage; a refused login fails at once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app import topics
from app.errors import KafkaUnavailable


def admin_after(failures: list[KafkaUnavailable], monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``_admin`` fails with each of ``failures`` in turn, then starts; the waits it took."""
    waits: list[float] = []

    async def admin(settings: Any) -> str:
        if failures:
            raise failures.pop(0)
        return "admin"

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(topics, "_admin", admin)
    monkeypatch.setattr(topics.asyncio, "sleep", sleep)
    return waits


async def test_kafka_unreachable_at_the_start_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = [KafkaUnavailable("cannot reach Kafka at k:9092: refused") for _ in range(3)]
    waits = admin_after(down, monkeypatch)
    assert await topics._admin_once_up(None, time.monotonic() + 60) == "admin"  # type: ignore[arg-type]
    assert waits == [1.0, 1.0, 1.0]


async def test_past_the_deadline_kafka_unreachable_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    admin_after([KafkaUnavailable("cannot reach Kafka at k:9092: refused")], monkeypatch)
    with pytest.raises(KafkaUnavailable, match="cannot reach Kafka"):
        await topics._admin_once_up(None, time.monotonic() - 1)  # type: ignore[arg-type]


async def test_a_refused_login_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    waits = admin_after(
        [KafkaUnavailable("the broker refused the login", refused=True)], monkeypatch
    )
    with pytest.raises(KafkaUnavailable, match="refused the login"):
        await topics._admin_once_up(None, time.monotonic() + 60)  # type: ignore[arg-type]
    assert waits == []
