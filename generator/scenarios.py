"""Injected laundering scenarios: who sends, how much in total, and how it is split over time.

A *structuring* scenario moves well over $10,000 between one pair in many transfers of under
$3,000 each, within a few minutes of event time, so it must alert; a *near miss* moves just under
$10,000 the same way and must not. `generator.stream` plans one per slot and interleaves the
transfers with normal traffic; `generator.truth` turns the emitted records into ground truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, TypeAlias

ScenarioType: TypeAlias = Literal["structuring", "near_miss"]

THRESHOLD_CENTS = 10_000_00
STRUCTURING_TOTAL_CENTS = (12_000_00, 30_000_00)
NEAR_MISS_TOTAL_CENTS = (9_000_00, 9_999_99)
MAX_TRANSFER_CENTS = 3_000_00 - 1  # every transfer stays under $3,000
MIN_TRANSFER_CENTS = 1_00
TRANSFERS = (5, 20)
# At most 4 minutes end to end: any span shorter than SIZE - SLIDE (8 min with the defaults)
# lies inside one sliding window, so a structuring total is always seen whole by some window.
SPAN_MS = (60_000, 240_000)
_SPLIT_ATTEMPTS = 100
NEAR_MISS_EVERY = 3  # scenarios 2, 5, 8, ... are near misses when near misses are on


@dataclass(frozen=True, slots=True)
class ScenarioRef:
    """One planned scenario; every record of the scenario points at the same object."""

    index: int
    type: ScenarioType
    sender: str
    receiver: str
    transfers: int
    total_cents: int


@dataclass(frozen=True, slots=True)
class PlannedTransfer:
    """One transfer of a scenario, `offset_ms` after the scenario's first one."""

    offset_ms: int
    amount_cents: int


def scenario_type(index: int, *, near_misses: bool) -> ScenarioType:
    """Every third scenario is a near miss, so one or two scenarios always mean alerts."""
    if near_misses and index % NEAR_MISS_EVERY == NEAR_MISS_EVERY - 1:
        return "near_miss"
    return "structuring"


def scenario_accounts(index: int, normal_accounts: int) -> tuple[str, str]:
    """A (sender, receiver) pair for scenario `index`, outside the normal pool and unique.

    Ids are "9" followed by a counter zero-padded to at least the width of the largest normal
    id: they are longer than every normal id (so never in the pool), and distinct per scenario.
    """
    width = max(4, len(str(normal_accounts - 1)))
    return f"9{2 * index:0{width}d}", f"9{2 * index + 1:0{width}d}"


def plan_scenario(
    rng: random.Random,
    index: int,
    *,
    normal_accounts: int,
    slot_ms: int,
    near_misses: bool,
    cents: bool,
) -> tuple[ScenarioRef, list[PlannedTransfer]]:
    """Choose the total, the split and the timing of scenario `index`.

    The transfers span at most 80 % of the slot, so consecutive scenarios never overlap.
    """
    kind = scenario_type(index, near_misses=near_misses)
    low, high = STRUCTURING_TOTAL_CENTS if kind == "structuring" else NEAR_MISS_TOTAL_CENTS
    unit = 1 if cents else 100
    total = rng.randint(-(-low // unit), high // unit) * unit
    # Enough transfers that an even share stays well under the per-transfer cap.
    fewest = max(TRANSFERS[0], -(-total // 2_400_00))
    transfers = rng.randint(fewest, TRANSFERS[1])
    amounts = split_total(rng, total, transfers, unit=unit)
    span = min(rng.randint(*SPAN_MS), slot_ms * 8 // 10)
    inner = sorted(rng.randint(0, span) for _ in range(transfers - 2))
    offsets = [0, *inner, span]
    sender, receiver = scenario_accounts(index, normal_accounts)
    ref = ScenarioRef(index, kind, sender, receiver, transfers, total)
    return ref, [PlannedTransfer(o, a) for o, a in zip(offsets, amounts, strict=True)]


def split_total(rng: random.Random, total_cents: int, parts: int, *, unit: int = 1) -> list[int]:
    """Split `total_cents` into `parts` uneven amounts, each a multiple of `unit` cents.

    Integer arithmetic only; every part lies in [$1, $3,000). Uneven shares are redrawn until
    they fit (one or two draws for the totals and counts `plan_scenario` uses).
    """
    units = total_cents // unit
    if total_cents % unit or not parts * MIN_TRANSFER_CENTS <= total_cents:
        raise ValueError(f"cannot split {total_cents} cents into {parts} parts of {unit}")
    if total_cents > parts * MAX_TRANSFER_CENTS:
        raise ValueError(f"{total_cents} cents need more than {parts} transfers under $3,000")
    for _ in range(_SPLIT_ATTEMPTS):
        amounts = _weighted_split(units, [rng.randint(70, 130) for _ in range(parts)], unit)
        if min(amounts) >= MIN_TRANSFER_CENTS and max(amounts) <= MAX_TRANSFER_CENTS:
            return amounts
    # Only reachable for totals close to parts x $3,000: an even split always fits then.
    return _weighted_split(units, [1] * parts, unit)


def _weighted_split(units: int, weights: list[int], unit: int) -> list[int]:
    weight_sum = sum(weights)
    shares = [units * w // weight_sum for w in weights]
    for i in range(units - sum(shares)):  # the rounding remainder, one unit each
        shares[i % len(shares)] += 1
    return [s * unit for s in shares]
