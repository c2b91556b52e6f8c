"""Changelog records of a replaced writer are not restored (app.runtime.fencing).

Each case is a changelog partition read in order: (generation, write time) per record.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

from app.runtime.fencing import GENERATION_HEADER, ChangelogFence, FencedTable, record_generation


def admitted(records: list[tuple[int | None, int | None]]) -> list[bool]:
    fence = ChangelogFence()
    return [fence.admit("p0", generation, written) for generation, written in records]


def test_a_zombie_s_held_records_after_the_new_owner_s_are_dropped() -> None:
    #  gen 5 ── A writes ── A frozen ┆ gen 6 ── B writes ── A resumes: its held writes land
    #  t=100, 110                    ┆ t=200, 210           t=120, 130 (written before the freeze)
    assert admitted([(5, 100), (5, 110), (6, 200), (6, 210), (5, 120), (5, 130)]) == [
        True, True, True, True, False, False,
    ]  # fmt: skip


def test_an_orderly_handover_keeps_everything_whatever_the_clocks_say() -> None:
    # B's clock runs behind A's: its records still follow A's in the log, and are newer
    assert admitted([(5, 1_000), (6, 900), (7, 950), (7, 800)]) == [True, True, True, True]


def test_a_new_life_of_the_group_is_kept() -> None:
    # the group was deleted (or expired): generations start again at 1, days later
    day = 86_400_000
    later = 8 * day
    assert admitted([(57, 1_000), (57, 2_000), (1, later), (2, later + 90), (1, later + 50)]) == [
        True, True, True, True, False,  # and in the new life a zombie is still fenced
    ]  # fmt: skip


def test_records_without_a_generation_or_a_writer_s_time_are_kept() -> None:
    assert admitted([(6, 200), (None, 100), (5, None)]) == [True, True, True]


def test_partitions_are_fenced_apart() -> None:
    fence = ChangelogFence()
    assert fence.admit("p0", 6, 200)
    assert fence.admit("p1", 5, 100)  # another partition's writer
    assert not fence.admit("p0", 5, 100)
    assert fence.dropped == 1


def test_the_generation_header() -> None:
    assert record_generation([(GENERATION_HEADER, b"12"), ("other", b"x")]) == 12
    assert record_generation({GENERATION_HEADER: b"3"}) == 3
    assert record_generation(None) is None
    assert record_generation([(GENERATION_HEADER, b"twelve")]) is None


class Store:
    def __init__(self) -> None:
        self.applied: list[bytes] = []
        self.persisted: dict[Any, int] = {}

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        for event in batch:
            self.applied.append(event.message.value)
            self.persisted[event.message.tp] = event.message.offset

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset


def bare_table() -> tuple[FencedTable, Store, list[dict[str, Any]]]:
    """A FencedTable without an app: a store and a changelog topic that record what they get."""
    table = object.__new__(FencedTable)
    store, sent = Store(), []
    changelog = SimpleNamespace(
        send_soon=lambda **kwargs: sent.append(kwargs), get_topic_name=lambda: "changelog"
    )
    attrs = {
        "fence": ChangelogFence(), "_data": store, "name": "pair-windows",
        "app": SimpleNamespace(consumer_generation_id=7), "_changelog_topic": changelog,
        "key_serializer": "raw", "value_serializer": "raw",
    }  # fmt: skip
    vars(table).update(attrs)
    return table, store, sent


def event(offset: int, generation: int, written_ms: int, value: bytes) -> Any:
    message = SimpleNamespace(
        tp=TP("changelog", 0), offset=offset, value=value, timestamp=written_ms / 1000,
        timestamp_type=0, headers=[(GENERATION_HEADER, str(generation).encode())],
    )  # fmt: skip
    return SimpleNamespace(message=message)


def test_a_restore_skips_the_zombie_s_records_and_moves_past_them() -> None:
    table, store, _ = bare_table()
    batch = [event(0, 5, 100, b"a"), event(1, 6, 200, b"b"), event(2, 5, 120, b"stale")]
    table.apply_changelog_batch(batch)
    assert store.applied == [b"a", b"b"]
    assert store.persisted == {TP("changelog", 0): 2}  # not read again at the next start


def test_a_broker_set_timestamp_is_no_write_time() -> None:
    table, store, _ = bare_table()
    late = event(2, 5, 120, b"kept")
    late.message.timestamp_type = 1  # LogAppendTime
    table.apply_changelog_batch([event(1, 6, 200, b"b"), late])
    assert store.applied == [b"b", b"kept"]
