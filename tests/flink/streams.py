"""The parity streams: what each one feeds both the worker and the PyFlink job, and why the
comparison on it is exact (docs/flink-parity.md has the rules this relies on).

Two kinds of stream, by the watermark rule they leave room for:

- 8 partitions: the worker's watermark is per partition (keyed input) or the minimum over the
  partitions (unkeyed), Flink's is the minimum over its source subtasks, and that minimum
  depends on how fast each partition happens to be read. So these streams keep every event
  within the out-of-orderness bound of everything before it in its partition
  (:func:`within_bound`, checked on the records as they landed): no window of any event is
  closed when it arrives under either rule, whatever the interleaving, and late sets are empty.
- 1 partition: per-partition watermark = minimum over partitions, and both systems advance it
  after every event, so which windows an event still joins is decided by the log order alone.
  Late events, partially late events and watermark edges live here.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from generator import GeneratorConfig, generate
from tests.flink.lines import Unusable, read_line

Record = tuple[bytes | None, bytes | None]  # (key, value), in send order

T0 = 1_500_768_000_000  # 2017-07-23T00:00:00Z: a multiple of every SIZE and SLIDE used here
MINUTE = 60_000


@dataclass(frozen=True)
class Stream:
    """One input topic's content, the worker settings it runs with, and what it must exercise."""

    name: str
    partitions: int
    records: tuple[Record, ...]
    keyed: bool = True  # records keyed by SENDER:RECEIVER (else no key)
    size: int = 600  # seconds
    slide: int = 120
    threshold: str = "10000"
    out_of_orderness: int = 0
    # Seconds of wall clock after which a partition without records is idle (0: never), for
    # the worker's IDLE_TIMEOUT and the job's WatermarkStrategy.withIdleness alike.
    idle_timeout: int = 0
    # The partition of each record in turn, cycling (None: by key, or the producer's choice);
    # the closing transactions then go to these partitions only.
    placement: tuple[int, ...] | None = None
    # What the comparison must contain, so that a stream that stops exercising its case fails.
    min_windows: int = 1
    late: bool = False
    dropped: frozenset[str] = frozenset()
    # Hand-derived flagged windows (sender, receiver, start ms), where the stream is hand-made.
    expected: frozenset[tuple[str, str, int]] | None = None

    def settings(self) -> dict[str, str]:
        """The worker's environment for this stream (the job gets the same values)."""
        return {
            "TOPIC_PARTITIONS": str(self.partitions),
            "WINDOW_SIZE": str(self.size),
            "WINDOW_SLIDE": str(self.slide),
            "THRESHOLD": self.threshold,
            "MAX_OUT_OF_ORDERNESS": str(self.out_of_orderness),
            "IDLE_TIMEOUT": str(self.idle_timeout),
        }

    def partition_of(self) -> list[int | None] | None:
        """Where each record is sent, for the producer (None: its own choice)."""
        if self.placement is None:
            return None
        return [self.placement[i % len(self.placement)] for i in range(len(self.records))]

    def data_partitions(self) -> list[int]:
        """The partitions the stream's records go to (all, unless placed)."""
        return sorted(set(self.placement or range(self.partitions)))


def generated(cfg: GeneratorConfig) -> tuple[Record, ...]:
    return tuple((r.key, r.value) for r in generate(cfg))


def one_route_per_pair(records: Iterable[Record], seed: int, unkeyed: float = 0.25) -> list[Record]:
    """Keyed ``records`` with a seeded share of their pairs sent unkeyed, as when two producers
    write one topic: each pair takes one route (docs/semantics.md, a pair sent both ways)."""
    rng = random.Random(seed)
    chosen: dict[bytes | None, bool] = {}
    return [
        (None if chosen.setdefault(key, key is not None and rng.random() < unkeyed) else key, value)
        for key, value in records
    ]


def within_bound(
    landed: Iterable[tuple[int, bytes | None]], out_of_orderness_ms: int
) -> list[tuple[int, int]]:
    """(partition, index) of every usable event older than its partition's newest event so far
    minus the bound: the events whose windows the two watermark rules may treat differently."""
    newest: dict[int, int] = {}
    outside = []
    for index, (partition, value) in enumerate(landed):
        try:
            time_ms = read_line(value).time_ms
        except Unusable:
            continue
        if time_ms < newest.get(partition, time_ms) - out_of_orderness_ms:
            outside.append((partition, index))
        newest[partition] = max(newest.get(partition, time_ms), time_ms)
    return outside


def rfc3339(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def line(stamp: str | int, sender: str, receiver: str, amount: str) -> Record:
    """A keyed record; an int stamp is written as RFC 3339 with milliseconds."""
    text = rfc3339(stamp) if isinstance(stamp, int) else stamp
    return f"{sender}:{receiver}".encode(), f"{text};{sender};{receiver};{amount}".encode()


def window_edges() -> tuple[Record, ...]:
    """Hand-made, one partition, SIZE 10 min, SLIDE 2 min, THRESHOLD 10000, bound 0.

    Each group advances the partition's watermark only forwards, so later groups still see
    their own windows open; the expected effect is in the comment, both systems must agree.
    """
    m = MINUTE
    records: list[Record] = [
        # Before the epoch (Go's two-digit year 69 is 1969): windows with negative starts.
        line("Wednesday, 31-Dec-69 23:55:00 UTC", "old", "epoch", "6000"),
        line("1969-12-31T23:59:59.999Z", "old", "epoch", "4000.01"),  # [-10min, 0) > 10000
        line("Thursday, 01-Jan-70 00:00:00 GMT", "old", "epoch", "0.01"),  # starts a window at 0
        # A window's start is inclusive, its end exclusive, the threshold strict:
        # [T0, T0+10) holds exactly 10000.00 (not flagged); the event at T0+10 is outside it.
        line(T0 - 1, "edge", "over", "0.01"),  # in [T0-10, T0) only, not in [T0, T0+10)
        line(T0, "edge", "exact", "5000"),
        line(T0, "edge", "over", "9999.99"),
        line(T0 + 10 * m - 1, "edge", "exact", "5000"),  # [T0, T0+10) = 10000.00
        line(T0 + 10 * m - 1, "edge", "over", "0.02"),  # [T0, T0+10) = 10000.01
        line(T0 + 10 * m, "edge", "exact", "0.01"),  # would make 10000.01 if ends were inclusive
        # Watermark at T0+30min+1ms: windows ending at or before it are closed.
        line(T0 + 30 * m + 1, "clock", "tick", "1"),
        line(T0 + 20 * m, "late", "a", "20000"),  # last window ends T0+30: late
        line(T0 + 22 * m - 1, "late", "a", "20000"),  # same pane: late
        line(T0 + 22 * m, "partial", "a", "10000.01"),  # joins [T0+22, T0+32) only
        # Watermark at T0+40min-1ms: the window ending at T0+40 is still open.
        line(T0 + 40 * m - 1, "clock", "tick", "1"),
        line(T0 + 30 * m, "partial", "b", "10000.01"),  # joins [T0+30, T0+40) only
        line(T0 + 30 * m - 1, "late", "b", "10000.01"),  # last window ends T0+38: late
        # Watermark exactly at T0+50min, a window end.
        line(T0 + 50 * m, "clock", "tick", "1"),
        line(T0 + 40 * m, "late", "c", "10000.01"),  # last window ends T0+50: late
        line(T0 + 42 * m, "partial", "c", "10000.01"),  # joins [T0+42, T0+52) only
        line(T0 + 50 * m, "edge", "late", "10000.01"),  # at the watermark: all 5 windows
        # Both layouts and their variants on one pair: 10000.01 in the windows holding them all,
        # so one event misread changes which windows are flagged.
        line("2017-07-23T03:00:00+02:00", "fmt", "x", "2500.5"),  # T0+60
        line("2017-07-23t01:00:30.5z", "fmt", "x", "2500.50"),
        line("2017-07-23T01:01:00.123456789Z", "fmt", "x", "0.01"),  # fraction truncated to ms
        line("Sunday, 23-Jul-17 01:02:00 GMT", "fmt", "x", "8"),
        line("2017-07-22T23:33:00-01:30", "fmt", "x", "4990.01"),  # T0+63
        (b"fmt:x", b"2017-07-23T01:04:00Z;fmt;x;0.98\n"),  # a line terminator is not data
        (b"fmt:x", b"2017-07-23T01:05:00Z;fmt;x;0.01\r\n"),
        line("2017-07-23T01:06:00Z", "fmt", "max", "1000000000"),  # the largest amount
    ]
    # Unusable lines, each dropped by both with the same reason (the worker: dead letters).
    bad: list[Record] = [
        (b"x:y", None),
        (b"x:y", b"x" * 70_000),  # oversized (MAX_RECORD_BYTES 65536)
        (b"x:y", b"2017-07-23T01:07:00Z;M\xfcller;y;5"),  # not UTF-8
        (b"x:y", b"2017-07-23T01:07:00Z;x;y"),
        (b"x:y", b"2017-07-23T01:07:00Z;x;y;5;6"),
        (b"x:y", b"2017-02-30T01:07:00Z;x;y;5"),
        (b"x:y", b"2017-07-23T01:07:00;x;y;5"),  # no zone
        (b"x:y", b"Sun, 23-Jul-17 01:07:00 UTC;x;y;5"),
        (b"x:y", b"Sunday, 23-jul-17 01:07:00 UTC;x;y;5"),
        (b"x:y", b"Sunday, 23-Jul-17 01:07:00 CET;x;y;5"),
        (b"x:y", b"2017-07-23T01:07:00+24:00;x;y;5"),
        (b"x:y", b"bad time;a b;y;5"),  # the timestamp is checked first
        (b"x:y", b"2017-07-23T01:07:00Z;a b;y;5"),
        (b"x:y", b"2017-07-23T01:07:00Z;x;" + b"y" * 65 + b";5"),
        (b"x:y", b"2017-07-23T01:07:00Z;x;y;1000000000.01"),
        (b"x:y", b"2017-07-23T01:07:00Z;x;y;1.234"),
        (b"x:y", b"2017-07-23T01:07:00Z;x;y;0.00"),
        (b"x:y", b"2017-07-23T01:07:00Z;x;y;-5"),
        (b"x:y", "2017-07-23T01:07:00Z;x;y;\uff15".encode()),  # a fullwidth digit
    ]
    return tuple(records + bad)


def window_edges_expected() -> frozenset[tuple[str, str, int]]:
    """The flagged windows of :func:`window_edges`, worked out by hand from its comments."""
    m = MINUTE

    def starts(pair: str, *minutes: int) -> set[tuple[str, str, int]]:
        sender, receiver = pair.split(":")
        return {(sender, receiver, T0 + minute * m) for minute in minutes}

    return frozenset(
        {("old", "epoch", start) for start in (-10 * m, -8 * m, -6 * m)}
        | starts("edge:over", 0)
        | starts("partial:a", 22)
        | starts("partial:b", 30)
        | starts("partial:c", 42)
        | starts("edge:late", 42, 44, 46, 48, 50)
        | starts("fmt:x", 56, 58, 60)
        | starts("fmt:max", 58, 60, 62, 64, 66)
    )


@cache
def parity_streams() -> tuple[Stream, ...]:
    """The stream set of test_parity.py (a few thousand events each, ~16k in all)."""
    default_traffic = GeneratorConfig(
        count=3000, accounts=30, seed=1, layout="rfc850", mean_gap_ms=400, scenarios=8,
        malformed=0.02,
    )  # fmt: skip
    bursts = GeneratorConfig(
        count=3000, accounts=15, seed=2, layout="rfc3339", mean_gap_ms=300, scenarios=40
    )
    out_of_order = GeneratorConfig(
        count=3000, accounts=30, seed=4, layout="rfc3339", mean_gap_ms=400, scenarios=8,
        out_of_order=0.1, out_of_order_max_ms=300_000,
    )  # fmt: skip
    unkeyed = GeneratorConfig(
        count=3000, accounts=30, seed=6, layout="rfc3339", mean_gap_ms=400, scenarios=8,
        out_of_order=0.05, out_of_order_max_ms=120_000, malformed=0.01, keyed=False,
    )  # fmt: skip
    late = GeneratorConfig(
        count=2000, accounts=20, seed=5, layout="rfc850", mean_gap_ms=500, scenarios=10,
        out_of_order=0.05, out_of_order_max_ms=900_000, malformed=0.02,
    )  # fmt: skip
    unkeyed_late = GeneratorConfig(
        count=1500, accounts=20, seed=7, layout="rfc3339", mean_gap_ms=300, scenarios=8,
        out_of_order=0.05, out_of_order_max_ms=600_000, keyed=False,
    )  # fmt: skip
    mixed = GeneratorConfig(
        count=3000, accounts=30, seed=9, layout="rfc3339", mean_gap_ms=400, scenarios=8,
        out_of_order=0.05, out_of_order_max_ms=120_000,
    )  # fmt: skip
    unkeyed_idle = GeneratorConfig(
        count=2000, accounts=30, seed=8, layout="rfc3339", mean_gap_ms=400, scenarios=8,
        malformed=0.01, keyed=False,
    )  # fmt: skip
    every_reason = frozenset(
        {"field_count", "bad_timestamp", "bad_account", "bad_amount", "not_utf8"}
    )
    return (
        Stream("default-traffic", 8, generated(default_traffic), min_windows=8,
               dropped=every_reason),
        Stream("structuring-bursts", 8, generated(bursts), min_windows=40),
        Stream("out-of-order-within-bound", 8, generated(out_of_order), out_of_orderness=300,
               min_windows=8),
        Stream("unkeyed", 8, generated(unkeyed), keyed=False, out_of_orderness=120,
               min_windows=8, dropped=every_reason),
        # Keyed pairs close at their partition's watermark, re-keyed ones at the minimum: keyed
        # input read ahead closes no window of a re-keyed pair still on the internal topic.
        Stream("keyed-and-unkeyed", 8, tuple(one_route_per_pair(generated(mixed), seed=9)),
               out_of_orderness=120, min_windows=8),
        # Event time never stalls: the partitions without records leave the minimum once idle
        # (withIdleness in the job; in a bounded read they also end at once, and their end is
        # the highest watermark: a reader of a partition with records that paused for the idle
        # timeout, its records not all read, would let every later one be late in the job, so
        # the timeout is far above a pause of a loaded machine; the results do not depend on it).
        Stream("unkeyed-one-of-eight", 8, generated(unkeyed_idle), keyed=False, idle_timeout=10,
               placement=(6,), min_windows=8),
        Stream("unkeyed-three-of-eight", 8, generated(unkeyed_idle), keyed=False,
               idle_timeout=10, placement=(0, 2, 5), min_windows=8),
        Stream("window-edges", 1, window_edges(), min_windows=20, late=True,
               dropped=every_reason | {"oversized"}, expected=window_edges_expected()),
        Stream("late-beyond-bound", 1, generated(late), out_of_orderness=60, min_windows=10,
               late=True, dropped=every_reason),
        Stream("unkeyed-late", 1, generated(unkeyed_late), keyed=False, size=300, slide=60,
               threshold="5000.50", min_windows=8, late=True),
    )  # fmt: skip
