"""Local table state across restarts: kept after a clean stop, discarded after any other."""

from __future__ import annotations

from pathlib import Path

from app.runtime.localstate import (
    CLEAN_STOP,
    mark_clean_stop,
    open_local_state,
    undelivered_batches,
)


def tables_with_a_db(root: Path) -> Path:
    tables = root / "v1" / "tables"
    (tables / "pair-windows-0.db").mkdir(parents=True)
    (tables / "pair-windows-0.db" / "CURRENT").write_text("MANIFEST-000001\n")
    return tables


def test_after_a_clean_stop_the_tables_are_kept_and_the_mark_consumed(tmp_path: Path) -> None:
    tables = tables_with_a_db(tmp_path)
    mark_clean_stop(tmp_path)
    assert open_local_state(tmp_path, tables) is False
    assert (tables / "pair-windows-0.db" / "CURRENT").exists()
    assert not (tmp_path / CLEAN_STOP).exists()  # a crash of this run must not find it


def test_without_the_mark_the_tables_are_discarded(tmp_path: Path) -> None:
    tables = tables_with_a_db(tmp_path)
    assert open_local_state(tmp_path, tables) is True
    assert not tables.exists()


def test_a_crash_after_a_clean_start_discards_them_next_time(tmp_path: Path) -> None:
    tables = tables_with_a_db(tmp_path)
    mark_clean_stop(tmp_path)
    open_local_state(tmp_path, tables)  # this run then dies without marking
    assert open_local_state(tmp_path, tables) is True


def test_a_first_start_has_nothing_to_discard(tmp_path: Path) -> None:
    assert open_local_state(tmp_path, tmp_path / "v1" / "tables") is False
    empty = tmp_path / "v1" / "tables"
    empty.mkdir(parents=True)
    assert open_local_state(tmp_path, empty) is False
    assert empty.exists()


class Accumulator:
    def __init__(self, waiting: int, in_flight: int) -> None:
        self._batches = {"tp": ["batch"] * waiting}
        self._pending_batches = {f"sent-{n}" for n in range(in_flight)}


class StoppedProducer:
    def __init__(self, waiting: int = 0, in_flight: int = 0) -> None:
        self._message_accumulator = Accumulator(waiting, in_flight)


def test_a_producer_that_delivered_everything_holds_no_batch() -> None:
    assert undelivered_batches(StoppedProducer()) == 0
    assert undelivered_batches(None) == 0  # the worker stopped before its producer started


def test_batches_waiting_or_unacknowledged_are_undelivered() -> None:
    assert undelivered_batches(StoppedProducer(waiting=2, in_flight=1)) == 3
