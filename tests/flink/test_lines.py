"""The oracle's line reader (tests/flink/lines.py) and the worker's parser (app/parsing.py) must
agree on every line: the same transaction, or the same reason to drop it.

The parity tests compare them on the streams they send; this compares them on far more lines,
without a broker: every record of the parity streams and lines built from valid and broken
fragments of each field.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import BadRecord
from app.parsing import parse_transaction
from tests.flink.lines import MAX_RECORD_BYTES, Unusable, read_line
from tests.flink.streams import parity_streams

pytestmark = pytest.mark.parity

Verdict = tuple[int, str, str, int] | str


def worker_verdict(raw: bytes | None) -> Verdict:
    try:
        tx = parse_transaction(raw, max_bytes=MAX_RECORD_BYTES)
    except BadRecord as bad:
        return bad.reason
    return tx.time_ms, tx.sender, tx.receiver, tx.cents


def oracle_verdict(raw: bytes | None) -> Verdict:
    try:
        line = read_line(raw)
    except Unusable as bad:
        return bad.reason
    return line.time_ms, line.sender, line.receiver, line.cents


def test_both_read_every_record_of_the_parity_streams_alike() -> None:
    records = [value for stream in parity_streams() for _, value in stream.records]
    assert len(records) > 15_000
    differ = [r for r in records if worker_verdict(r) != oracle_verdict(r)]
    assert not differ, differ[:10]


TIMESTAMPS = st.sampled_from(
    [
        "Sunday, 23-Jul-17 01:06:47 UTC",
        "Sunday, 23-Jul-17 01:06:47 GMT",
        "Monday, 01-Jan-69 00:00:00 UTC",
        "Friday, 31-Dec-68 23:59:59 UTC",
        "Sunday, 29-Feb-17 01:06:47 UTC",
        "Tuesday, 29-Feb-00 12:00:00 UTC",
        "Sunday, 23-Jul-17 24:00:00 UTC",
        "Sunday, 23-Jul-17 23:59:60 UTC",
        "Sunday, 23-jul-17 01:06:47 UTC",
        "Sun, 23-Jul-17 01:06:47 UTC",
        "Sunday, 3-Jul-17 01:06:47 UTC",
        "Sunday, 23-Jul-2017 01:06:47 UTC",
        "2017-07-23T01:06:47Z",
        "2017-07-23t01:06:47z",
        "2017-07-23T01:06:47.1Z",
        "2017-07-23T01:06:47.999999999Z",
        "2017-07-23T01:06:47.1234567890Z",
        "2017-07-23T01:06:47+23:59",
        "2017-07-23T01:06:47-00:00",
        "2017-07-23T01:06:47+24:00",
        "2017-07-23T01:06:47+05:60",
        "0001-01-01T00:00:00+01:00",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-23:59",
        "2016-02-29T00:00:00Z",
        "2017-02-29T00:00:00Z",
        "2017-07-23T01:06:47",
        "2017-07-23 01:06:47Z",
        "",
    ]
)
ACCOUNTS = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True),
    st.sampled_from(["", "a b", "ab:cd", "x" * 65, "kontø", "٣", "a\n", "a;b"]),
)
AMOUNTS = st.one_of(
    st.from_regex(r"[0-9]{1,18}(\.[0-9]{0,3})?", fullmatch=True),
    st.sampled_from(["0", "0.00", "0.01", "1000000000", "1000000000.00", "1000000000.01", "-1",
                     "+1", "1e3", "١٢", "1_000", " 1", "1.", ".5", "NaN"]),
)  # fmt: skip


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TIMESTAMPS, ACCOUNTS, ACCOUNTS, AMOUNTS, st.sampled_from(["", "\n", "\r\n", "\n\n", ";"]))
def test_both_read_generated_lines_alike(
    stamp: str, sender: str, receiver: str, amount: str, end: str
) -> None:
    raw = f"{stamp};{sender};{receiver};{amount}{end}".encode()
    assert worker_verdict(raw) == oracle_verdict(raw)


@given(st.binary(max_size=80))
def test_both_read_arbitrary_bytes_alike(raw: bytes) -> None:
    assert worker_verdict(raw) == oracle_verdict(raw)


@pytest.mark.parametrize(
    "raw", [None, b"", b"x" * MAX_RECORD_BYTES, b"x" * (MAX_RECORD_BYTES + 1), b"\xff;a;b;1"]
)
def test_both_read_edge_records_alike(raw: bytes | None) -> None:
    assert worker_verdict(raw) == oracle_verdict(raw)
