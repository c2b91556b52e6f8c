"""Shared fixtures: a real Kafka broker for the test session and per-test topics on it.

`kafka` starts the project's own single-node broker (scripts/localkafka.py) on free ports in a
temp dir and always stops it; tests that use it, and all of tests/integration/, get the
`broker` marker, so `pytest -m "not broker"` runs the fast tests without Java.
"""

from __future__ import annotations

import atexit
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# the shared checks of the integration tests: a failed comparison shows the difference
pytest.register_assert_rewrite("tests.integration.pipeline", "tests.reference")

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS.parent / "scripts"))

from localkafka import LocalKafka, LocalKafkaError, create_topics, free_ports  # noqa: E402

PROJECT_ROLES = {
    "transactions": "transactions",
    "fraud": "fraud",
    "dlq": "transactions-dlq",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        in_integration = item.path.is_relative_to(TESTS / "integration")
        if in_integration or "kafka" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)


@contextmanager
def running(broker: LocalKafka) -> Iterator[LocalKafka]:
    """Start `broker` and always stop it; a broker that cannot start fails the test, saying why."""
    atexit.register(broker.stop)  # also when the session dies before the finalizer runs
    try:
        broker.start()
    except LocalKafkaError as error:
        pytest.fail(f"the test Kafka broker did not start: {error}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of this test session only; `.bootstrap` is "127.0.0.1:PORT"."""
    port, controller_port = free_ports(2)
    with running(LocalKafka(tmp_path_factory.mktemp("kafka"), port, controller_port)) as broker:
        yield broker


class TopicFactory:
    """Creates uniquely named topics, so each test has its own and tests never see each other."""

    def __init__(self, bootstrap: str, client_options: Mapping[str, Any] | None = None) -> None:
        self.bootstrap = bootstrap
        self.client_options = client_options or {}  # a secure broker's admin login

    def create(self, partitions: int = 8, **names: str) -> dict[str, str]:
        """Create one topic per role=base_name (default: the project's three topics).

        Returns {role: unique_name}, e.g. {"transactions": "transactions-1a2b3c4d"}.
        """
        suffix = uuid.uuid4().hex[:8]
        unique = {role: f"{base}-{suffix}" for role, base in (names or PROJECT_ROLES).items()}
        topics = dict.fromkeys(unique.values(), partitions)
        create_topics(self.bootstrap, topics, client_options=self.client_options)
        return unique


@pytest.fixture
def topics(kafka: LocalKafka) -> TopicFactory:
    """`topics.create(partitions=8, transactions="transactions", ...)` -> {role: topic name}."""
    return TopicFactory(kafka.bootstrap)
