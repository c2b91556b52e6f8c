"""Fixtures of the integration tests: an isolated pipeline on the session's real broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from localkafka import LocalKafka

from tests.conftest import TopicFactory
from tests.integration.pipeline import Pipeline
from tests.integration.terminal import Terminal


@pytest.fixture
def pipeline(kafka: LocalKafka, topics: TopicFactory, tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(kafka, topics, tmp_path)
    try:
        yield pipe
    finally:
        pipe.stop()


@pytest.fixture
def terminal_factory() -> Iterator[Callable[[str], Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(command: str) -> Terminal:
        opened.append(Terminal(command))
        return opened[-1]

    yield open_terminal
    for terminal in opened:
        terminal.close()
