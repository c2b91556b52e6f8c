"""A worker's local table state: kept after a clean stop, rebuilt from the changelog after a crash.

Faust writes a table key to RocksDB at once and its changelog record a little later (buffered),
and at start-up replays each changelog partition from the last offset whose acknowledgement it
saw. After a kill -9 the local store can hold writes that never reached the changelog next to
older values that this replay writes back: each key is one the worker wrote, but together they are
no state it was ever in (a partition's watermark and `applied` offsets newer than a pair that it
had already counted, say), and replayed input is then skipped or counted again. After a clean
stop every changelog record was delivered, so the replay brings each key, in order, to its last
value. The changelog alone, read from the start, is a prefix of what was done.

So a worker marks a clean stop in its data dir, and one that starts without the mark discards its
local tables and recovers them from the changelog. A stop is clean only if the producer delivered
everything: a stop cut short while Kafka is unreachable ends with its last changelog records still
in the producer, and its local tables ahead of the changelog (a record that failed outright
crashes the worker: app.app.SendFailures).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, NoReturn

log = logging.getLogger(__name__)

CLEAN_STOP = "clean-stop"  # a file in DATA_DIR, written when the worker stopped cleanly


def open_local_state(data_dir: Path, tables: Path) -> bool:
    """At start-up, before any table is opened: keep ``tables`` if the last stop was clean,
    else delete it. Returns True when it was deleted. The mark is consumed either way: a crash
    of this run must not find it."""
    mark = data_dir / CLEAN_STOP
    if mark.exists():
        mark.unlink()
        return False
    if not tables.is_dir() or not any(tables.iterdir()):
        return False
    shutil.rmtree(tables)
    log.warning(
        "the last stop was not clean: local table state discarded, recovering it from the changelog"
    )
    return True


def mark_clean_stop(data_dir: Path) -> None:
    """After a stop in which every changelog record was delivered."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / CLEAN_STOP).write_text("the worker stopped cleanly; its local tables are current\n")


def undelivered_batches(producer: Any) -> int:
    """Record batches a stopped aiokafka producer still holds (waiting, or sent and never
    acknowledged): 0 when everything it was given reached the broker."""
    accumulator = getattr(producer, "_message_accumulator", None)  # pinned by a contract test
    if accumulator is None:
        return 0
    waiting = sum(len(batches) for batches in accumulator._batches.values())
    return waiting + len(accumulator._pending_batches)


def restart_afresh(reason: str) -> NoReturn:
    """Restart the worker in place (the same command, the same process id) with its local
    tables discarded: no clean-stop mark is left, so the new start rebuilds them from the
    changelog. For a worker whose local state can no longer be trusted while it runs; nothing
    in flight is waited for (what its producer held is what must not go out)."""
    log.warning("%s: restarting, the local tables rebuilt from the changelog", reason)
    logging.shutdown()  # flush the log handlers: exec replaces the process as it is
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, sys.orig_argv)
    except OSError as exc:  # no such interpreter any more: a supervisor restarts the pod
        print(f"fraud-detector: restart failed ({exc}): exiting", file=sys.stderr, flush=True)
        os._exit(70)
