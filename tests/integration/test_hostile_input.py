"""Hostile input on the real broker (property-based): the worker never stops, every bad record
reaches the dead-letter topic with the right reason, the valid ones give the same alerts as
without the noise, and the worker's log holds no raw control character from the input."""

from __future__ import annotations

import asyncio
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator import GeneratorConfig, generate
from tests.integration.kafka_io import produce
from tests.integration.pipeline import TIMEOUT, Pipeline, assert_alerts, dead_letters, expect

VALID = GeneratorConfig(count=4000, accounts=60, seed=51, mean_gap_ms=300, scenarios=8)
STAMP = "2017-07-23T00:30:00Z"
VALID_ACCOUNT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
CONTROL = "".join(map(chr, [*range(0, 32), 127]))  # NUL .. US, DEL: CR, LF, ESC among them


def line(*fields: str) -> bytes:
    return ";".join(fields).encode()


def labelled(
    strategy: st.SearchStrategy[bytes], reason: str
) -> st.SearchStrategy[tuple[bytes, str]]:
    return strategy.map(lambda value: (value, reason))


account = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
hostile_account = st.one_of(
    st.just(""),
    st.text(alphabet=CONTROL + "ab: ", min_size=1, max_size=10),
    st.from_regex(r"[a-z]{65,80}", fullmatch=True),
).filter(lambda s: ";" not in s and not VALID_ACCOUNT.fullmatch(s))  # "ab" alone is valid
bad_amount = st.sampled_from(
    [
        "0",
        "0.00",
        "-5",
        "+5",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "1e3",
        "1.234",
        "1,000",
        " 5",
        "5.",
        ".5",
        "1000000000.01",
        "9" * 40,
        "0x10",
        "",
        "１２",
    ]
)
bad_stamp = st.sampled_from(
    [
        "2017-02-30T00:00:00Z",
        "2017-13-01T00:00:00Z",
        "Sunday, 32-Jul-17 01:06:47 UTC",
        "2017-07-23T25:00:00Z",
        "2017-07-23T01:06:47",
        "yesterday",
        "",
        "\x1b[2J",
        "0",
    ]
)
wrong_count = st.lists(st.text(alphabet="abc019:- ", max_size=6), max_size=9).filter(
    lambda fields: len(fields) != 4
)

hostile = st.one_of(
    labelled(wrong_count.map(lambda f: ";".join(f).encode()), "field_count"),
    labelled(st.just(b""), "field_count"),
    labelled(st.tuples(account, account, bad_amount).map(lambda t: line(STAMP, *t)), "bad_amount"),
    labelled(
        st.tuples(bad_stamp, account, account).map(lambda t: line(t[0], t[1], t[2], "5")),
        "bad_timestamp",
    ),
    labelled(
        st.tuples(hostile_account, account).map(lambda t: line(STAMP, t[0], t[1], "5")),
        "bad_account",
    ),
    labelled(
        st.binary(min_size=1, max_size=40)
        .filter(lambda b: not _utf8(b))
        .map(lambda b: line(STAMP, "1", "2", "5") + b),
        "not_utf8",
    ),
    labelled(st.integers(65_537, 1_000_000).map(lambda n: b"9" * n), "oversized"),
)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def test_hostile_records_all_reach_the_dlq_and_change_no_alert(pipeline: Pipeline) -> None:
    worker = pipeline.worker(0)
    worker.wait_ready(timeout=TIMEOUT)
    topic = pipeline.topics["transactions"]
    valid = [(r.key, r.value) for r in generate(VALID)]
    written = await produce(pipeline.bootstrap, topic, valid[: len(valid) // 2])
    labels: dict[tuple[int, int], str] = {}

    @settings(
        max_examples=80,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(hostile, min_size=25, max_size=60))
    def send_noise(batch: list[tuple[bytes, str]]) -> None:
        landed = asyncio.run(produce(pipeline.bootstrap, topic, [(None, v) for v, _ in batch]))
        written.extend(landed)
        for record, (_, reason) in zip(landed, batch, strict=True):
            labels[(record.partition, record.offset)] = reason

    await asyncio.to_thread(send_noise)  # hypothesis runs its own event loops per example
    assert len(labels) >= 2000
    written += await produce(pipeline.bootstrap, topic, valid[len(valid) // 2 :])
    written += await pipeline.close_windows(written)
    expected = expect(written)
    fraud, dlq = await pipeline.wait_for(expected)
    assert worker.alive()
    # 100% of the bad records, each with the reason its strategy meant
    got = dead_letters(dlq)
    assert {k: got.get(k) for k in labels} == labels
    assert got == expected.dead
    # the valid records' alerts are those of the valid records alone
    alone = expect([w for w in written if (w.partition, w.offset) not in labels])
    assert_alerts(fraud, alone)
    assert len(alone.closed) >= 8
    raw = worker.log_path.read_bytes()
    assert not {c for c in raw if (c < 32 and c not in (9, 10)) or c == 127}, "raw control bytes"
