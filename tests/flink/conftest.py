"""Fixtures of the parity suite: every stream written once to its own topics on the session's
broker, and the PyFlink job run once over all of them (one job per partition count)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby

import pytest
from localkafka import LocalKafka

from tests.conftest import PROJECT_ROLES, TopicFactory
from tests.flink.parity import Landed, Outcome, run_flink, write
from tests.flink.streams import parity_streams


@pytest.fixture(scope="session")
def landed(kafka: LocalKafka) -> dict[str, Landed]:
    """Stream name -> the stream written to fresh topics (input, fraud, dead letters)."""
    factory = TopicFactory(kafka.bootstrap)
    roles = {**PROJECT_ROLES, "control": "fraud-control"}
    out = {}
    for stream in parity_streams():
        topics = factory.create(partitions=stream.partitions, **roles)
        out[stream.name] = asyncio.run(write(kafka.bootstrap, stream, topics))
    return out


@pytest.fixture(scope="session")
def flink(
    kafka: LocalKafka, landed: dict[str, Landed], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    """Stream name -> what the PyFlink job made of it. The jobs of the two partition counts
    run side by side: each is mostly JVM start-up, and the streams are all written already."""
    by_partitions = sorted(landed.values(), key=lambda one: one.stream.partitions)
    groups = [list(g) for _, g in groupby(by_partitions, key=lambda one: one.stream.partitions)]
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        runs = [
            pool.submit(
                run_flink,
                kafka.bootstrap,
                group,
                tmp_path_factory.mktemp(f"flink-{group[0].stream.partitions}-partitions"),
            )
            for group in groups
        ]
        by_topic = {topic: outcome for run in runs for topic, outcome in run.result().items()}
    return {name: by_topic[one.topics["transactions"]] for name, one in landed.items()}
