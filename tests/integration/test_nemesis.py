"""Two minutes of the nemesis (tests/integration/nemesis.py) on the real broker: every kind of
fault, network ones included, then the exact check, under each processing guarantee (under
exactly-once, also: no alert and no dead letter read twice). ``make nemesis`` runs it longer."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from tests.integration.nemesis import KINDS, Nemesis, schedule
from tests.integration.pipeline import both_guarantees

SECONDS = 120
SEED = int(os.environ.get("NEMESIS_SEED") or 7)


def test_a_two_minute_schedule_holds_every_kind_of_fault() -> None:
    for seed in (SEED, 1, 2, 3):
        kinds = Counter(fault.kind for fault in schedule(seed, SECONDS))
        assert set(kinds) == set(KINDS), seed


def test_the_same_seed_replays_the_same_schedule() -> None:
    assert schedule(SEED, SECONDS) == schedule(SEED, SECONDS) != schedule(SEED + 1, SECONDS)


@both_guarantees
async def test_two_minutes_of_random_faults_lose_nothing(tmp_path: Path, guarantee: str) -> None:
    lines: list[str] = []
    outcome = await Nemesis(tmp_path, SEED, SECONDS, lines.append, guarantee).run()
    print("\n".join(lines) + "\n" + outcome.report())
    assert Counter(f.kind for f in outcome.faults).keys() == KINDS.keys()
    assert (outcome.missing, outcome.unexpected) == (0, 0), outcome.report()
    if guarantee == "exactly_once":
        assert outcome.duplicates == 0, outcome.report()
    assert outcome.windows > 0 and outcome.dead_letters > 0
