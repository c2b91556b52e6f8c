"""Watermarks of one partition: keyed, re-keyed (min over inputs), idle. Times in minutes."""

from __future__ import annotations

from app.watermark import PartitionClock
from app.windowing import KEYED, NO_WATERMARK, REKEYED, Source, WindowSpec

MIN = 60_000
SPEC = WindowSpec(size_ms=10 * MIN, slide_ms=2 * MIN, threshold_cents=1, max_evidence=1)


def test_the_source_watermark_is_floored_to_the_slide_and_reports_each_new_slide() -> None:
    clock = PartitionClock(0)
    assert clock.observe(SPEC, 5 * MIN, 0)  # 5 -> 4: a new multiple of SLIDE
    assert clock.source == 4 * MIN
    assert not clock.observe(SPEC, 5 * MIN + 59_999, 0)  # still 4
    assert not clock.observe(SPEC, 3 * MIN, 0)  # never backwards
    assert clock.observe(SPEC, 6 * MIN, 0)
    assert clock.source == 6 * MIN


def test_out_of_orderness_holds_the_watermark_back() -> None:
    clock = PartitionClock(0)
    clock.observe(SPEC, 10 * MIN, 3 * MIN)
    assert clock.source == 6 * MIN  # 10 - 3 = 7, floored to 6


def test_keyed_input_follows_its_own_partition() -> None:
    clock = PartitionClock(0, keyed=True)
    clock.observe(SPEC, 8 * MIN, 0)
    assert clock.watermark(KEYED, partitions=2) == 8 * MIN


def test_rekeyed_input_waits_for_the_slowest_input_partition() -> None:
    #  input 0 at 12, input 1 not heard of: nothing is closed yet; then input 1 says 6
    clock = PartitionClock(0, rekeyed=True)
    assert clock.announce(0, 12 * MIN)
    assert clock.watermark(REKEYED, partitions=2) == NO_WATERMARK
    assert clock.announce(1, 6 * MIN)
    assert clock.watermark(REKEYED, partitions=2) == 6 * MIN
    assert not clock.announce(1, 4 * MIN)  # an old announcement changes nothing
    assert clock.watermark(REKEYED, partitions=2) == 6 * MIN


def test_each_route_follows_its_own_input() -> None:
    # keyed pairs close at this input partition's watermark, re-keyed ones at the minimum
    clock = PartitionClock(0, keyed=True, rekeyed=True)
    clock.observe(SPEC, 20 * MIN, 0)
    clock.announce(0, 10 * MIN)
    clock.announce(1, 14 * MIN)
    assert clock.watermark(KEYED, partitions=2) == 20 * MIN
    assert clock.watermark(REKEYED, partitions=2) == 10 * MIN


def test_an_idle_partition_lets_event_time_run_at_wall_clock_speed() -> None:
    clock = PartitionClock(0, keyed=True)
    assert not clock.idle(SPEC, 5 * MIN)  # no event yet: nothing to go on from
    clock.observe(SPEC, 61 * MIN, 0)  # 60
    assert not clock.idle(SPEC, 30_000)  # 61.5 is still in the slide of 60
    assert clock.idle(SPEC, 3 * MIN)  # 64 -> 64
    assert clock.source == 64 * MIN
    assert clock.idle(SPEC, 5 * MIN)  # counted from the last event (61), not compounded: 66
    assert clock.source == 66 * MIN


def test_json_round_trip_keeps_what_is_persisted() -> None:
    clock = PartitionClock(3, keyed=True, rekeyed=True, closed={KEYED: 4 * MIN, REKEYED: 2 * MIN})
    clock.observe(SPEC, 9 * MIN, 0)
    clock.announce(1, 2 * MIN)
    clock.mark_applied(Source("k", 3, 41))
    again = PartitionClock.from_json(clock.to_json())
    assert again == clock
    assert again.is_duplicate(Source("k", 3, 41))
    assert not again.is_duplicate(Source("r", 3, 41))


def test_an_idle_input_partition_leaves_the_minimum_and_rejoins_with_its_next_record() -> None:
    #  input 0: ──4────────12──────────────         (data)
    #  input 1: ─────────────── idle ──── 6 ──      (quiet, then a late comer)
    #  min:       -inf ...      12 (1 left)   12 (1 rejoined at 6: the closed 12 holds, see
    #                                              Detector._watermark)
    clock = PartitionClock(0, rekeyed=True)
    clock.announce(0, 4 * MIN)
    assert clock.announce(0, 12 * MIN)
    assert (
        clock.watermark(REKEYED, partitions=2) == NO_WATERMARK
    )  # input 1 never heard of: it holds
    assert clock.announce(1, NO_WATERMARK, idle=True)  # it never had a record: idle
    assert clock.watermark(REKEYED, partitions=2) == 12 * MIN
    assert not clock.announce(1, NO_WATERMARK, idle=True)  # told again: nothing changes
    assert clock.announce(1, NO_WATERMARK)  # a record came: back in the minimum
    assert clock.watermark(REKEYED, partitions=2) == NO_WATERMARK
    assert clock.announce(1, 6 * MIN)
    assert clock.watermark(REKEYED, partitions=2) == 6 * MIN


def test_when_every_input_partition_is_idle_the_highest_watermark_holds() -> None:
    clock = PartitionClock(0, rekeyed=True)
    clock.announce(0, 14 * MIN, idle=True)
    clock.announce(1, NO_WATERMARK, idle=True)
    assert clock.watermark(REKEYED, partitions=3) == NO_WATERMARK  # input 2 not idle yet
    clock.announce(2, 8 * MIN, idle=True)
    assert clock.watermark(REKEYED, partitions=3) == 14 * MIN


def test_an_input_partition_beyond_the_configured_count_joins_the_minimum_when_heard_of() -> None:
    # partitions added to the input topic while workers run announce like the others
    clock = PartitionClock(0, rekeyed=True)
    clock.announce(0, 10 * MIN)
    assert clock.watermark(REKEYED, partitions=1) == 10 * MIN
    clock.announce(5, 4 * MIN)
    assert clock.watermark(REKEYED, partitions=1) == 4 * MIN
    clock.announce(5, 4 * MIN, idle=True)
    assert clock.watermark(REKEYED, partitions=1) == 10 * MIN


def test_idleness_survives_the_json_round_trip() -> None:
    clock = PartitionClock(2, rekeyed=True, source_idle=True)
    clock.announce(1, 6 * MIN, idle=True)
    again = PartitionClock.from_json(clock.to_json())
    assert again == clock
    assert again.idle_sources == {1} and again.source_idle


def test_a_clock_stored_with_one_closed_mark_gives_it_to_each_route_it_had() -> None:
    stored = PartitionClock(3, keyed=True, rekeyed=True).to_json()
    del stored["closed_routes"]
    assert PartitionClock.from_json({**stored, "closed": 4 * MIN}).closed == {
        KEYED: 4 * MIN,
        REKEYED: 4 * MIN,
    }
    keyed_only = {**stored, "rekeyed": False, "closed": 4 * MIN}
    assert PartitionClock.from_json(keyed_only).closed == {KEYED: 4 * MIN}


def test_a_stored_clock_keeps_one_mark_for_a_worker_of_the_version_before() -> None:
    # the lowest: such a worker closes nothing a route of this version has not closed
    clock = PartitionClock(3, keyed=True, rekeyed=True, closed={KEYED: 8 * MIN, REKEYED: 4 * MIN})
    assert clock.to_json()["closed"] == 4 * MIN
    assert PartitionClock(3).to_json()["closed"] == NO_WATERMARK
