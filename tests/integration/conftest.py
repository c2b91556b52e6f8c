"""Fixtures of the integration tests: an isolated pipeline on the session's real broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from localkafka import LocalKafka

from tests.conftest import TopicFactory
from tests.integration.pipeline import Pipeline


@pytest.fixture
def pipeline(kafka: LocalKafka, topics: TopicFactory, tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(kafka, topics, tmp_path)
    try:
        yield pipe
    finally:
        pipe.stop()
