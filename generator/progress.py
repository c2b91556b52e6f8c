"""What the generator tells a person: a live progress bar on a terminal and a closing summary.

Both go to stderr, so `--stdout` output stays clean for piping. The display refreshes a few
times per second from `RunStats`; the send loop never waits for it.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from generator.runner import RunStats

REFRESH_SECONDS = 0.25


def describe_kinds(stats: RunStats) -> str:
    """`3 structuring + 1 near-miss scenarios, 12 malformed, 4 out-of-order`."""
    parts = [
        f"{len(stats.structuring)} structuring + {len(stats.near_misses)} near-miss scenarios",
        f"{stats.kinds['malformed']:,} malformed",
        f"{stats.kinds['out_of_order']:,} out-of-order",
    ]
    return ", ".join(parts)


def _short_kinds(stats: RunStats) -> str:
    """The progress bar's narrower version of `describe_kinds`."""
    return (
        f"scenarios {len(stats.structuring)}+{len(stats.near_misses)} near-miss"
        f" · malformed {stats.kinds['malformed']:,} · out-of-order {stats.kinds['out_of_order']:,}"
    )


def summary_line(stats: RunStats, acknowledged: int, target: str) -> str:
    """The one line printed when a run ends."""
    seconds = stats.elapsed()
    # Fewer acknowledged than produced only when the run was cut short (a closed pipe).
    unconfirmed = (
        f" ({stats.produced - acknowledged:,} more produced, not confirmed)"
        if acknowledged != stats.produced
        else ""
    )
    return (
        f"generator: sent {acknowledged:,} records to {target} in {seconds:.1f} s"
        f" ({acknowledged / seconds:,.0f}/s){unconfirmed}; {describe_kinds(stats)}"
    )


class ProgressDisplay:
    """A rich progress bar on stderr, refreshed by its own task while the run lasts."""

    def __init__(self, stats: RunStats, total: int | None, console: Console | None = None) -> None:
        self._stats = stats
        self._progress = Progress(
            SpinnerColumn(),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[kinds]}"),
            console=console or Console(stderr=True),
            auto_refresh=False,
            transient=True,
        )
        self._task: TaskID = self._progress.add_task("", total=total, rate="", kinds="")
        self._refresher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ProgressDisplay:
        self._progress.start()
        self._refresher = asyncio.create_task(self._refresh_forever())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        self._progress.stop()

    async def _refresh_forever(self) -> None:
        while True:
            self._refresh()
            await asyncio.sleep(REFRESH_SECONDS)

    def _refresh(self) -> None:
        stats = self._stats
        self._progress.update(
            self._task,
            completed=stats.produced,
            rate=f"{stats.produced / stats.elapsed():,.0f}/s",
            kinds=_short_kinds(stats),
        )
        self._progress.refresh()
