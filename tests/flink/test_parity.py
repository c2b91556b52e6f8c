"""The worker and the PyFlink oracle on the same Kafka topics must report the same windows.

For each stream of tests/flink/streams.py: the set of the worker's `window_closed` alerts equals
Flink's output field by field (pair, window start and end, total, count); the events the worker
dead-letters as `late` are exactly those Flink's window drops as late; the lines it
dead-letters as unusable are those the job drops, for the same reason. Why each comparison is
exact, and where the two differ by design, is in streams.py and docs/flink-parity.md. The
worker runs each stream under both processing guarantees.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from localkafka import LocalKafka

from tests.conftest import TopicFactory
from tests.flink.parity import Landed, Outcome, differences, run_worker
from tests.flink.streams import parity_streams, within_bound

pytestmark = pytest.mark.parity

STREAMS = [stream.name for stream in parity_streams()]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
@pytest.mark.parametrize("name", STREAMS)
def test_the_worker_reports_what_flink_reports(
    name: str,
    guarantee: str,
    kafka: LocalKafka,
    landed: dict[str, Landed],
    flink: dict[str, Outcome],
    tmp_path: Path,
) -> None:
    one = landed[name]
    stream = one.stream
    if stream.partitions > 1:
        # The watermark rules differ (per partition / minimum over a race); equal results
        # need every event within the bound of its partition's past (streams.py).
        log_order = sorted(one.written, key=lambda w: (w.partition, w.offset))
        outside = within_bound(
            ((w.partition, w.value) for w in log_order), stream.out_of_orderness * 1000
        )
        assert not outside, f"{name}: events beyond the bound in a multi-partition stream"
    theirs = flink[name]
    # each run writes to output topics of its own: the other guarantee's run reads the same input
    outputs = TopicFactory(kafka.bootstrap).create(
        partitions=stream.partitions, fraud="fraud", dlq="transactions-dlq"
    )
    ours = run_worker(
        kafka.bootstrap, replace(one, topics={**one.topics, **outputs}), tmp_path, guarantee
    )

    problems = differences(ours, theirs)
    assert not problems, f"{name}: {len(problems)} differences\n" + "\n".join(problems[:50])

    # The stream still exercises what it is there for.
    assert len(theirs.windows) >= stream.min_windows, len(theirs.windows)
    assert bool(theirs.late) == stream.late, sorted(theirs.late)
    assert stream.dropped <= set(theirs.dropped.values()), set(theirs.dropped.values())
    if stream.expected is not None:
        assert {(s, r, start) for s, r, start, _ in theirs.windows} == stream.expected
