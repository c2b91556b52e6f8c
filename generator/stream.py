"""Pure record generation: `generate(cfg)` yields the transaction records of one run, in order.

No I/O: `generator.sink` sends what this yields and paces it. With the simulated clock the output
depends only on the config (same seed, same bytes); with the real clock each record is stamped
with the wall clock when it is pulled, i.e. just before it is sent.

Separate random streams drive normal traffic, scenarios and faults, so turning on malformed or
out-of-order records changes where normal records fall, not what they are.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeAlias

from generator.config import GeneratorConfig
from generator.formats import TimestampFormatter, format_amount, shown_event_time
from generator.malformed import DLQ_REASONS, DlqReason, malformed_value
from generator.scenarios import PlannedTransfer, ScenarioRef, plan_scenario

RecordKind: TypeAlias = Literal["normal", "structuring", "near_miss", "malformed", "out_of_order"]
WallClock: TypeAlias = Callable[[], int]

SMALL_AMOUNT_MAX_DOLLARS = 2_000
LARGE_AMOUNT_SHARE = 0.01  # of normal transfers, drawn up to `max_amount_cents`
CENTS_SHARE = 0.3  # of amounts that carry cents when `cents` is on


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record and what it is meant to test.

    `event_time_ms` is the time a parser recovers from the value (whole seconds with RFC 850),
    None for malformed records. `expected_reason` is the dead-letter reason of a malformed one.
    `amount_cents` and `scenario` are set where they apply, for ground truth and tests.
    """

    key: bytes | None
    value: bytes
    event_time_ms: int | None
    kind: RecordKind
    expected_reason: DlqReason | None = None
    amount_cents: int | None = None
    scenario: ScenarioRef | None = None


def wall_clock_ms() -> int:
    """Epoch milliseconds now: the real clock's event time."""
    return time.time_ns() // 1_000_000


def generate(cfg: GeneratorConfig, *, wall_ms: WallClock = wall_clock_ms) -> Iterator[Record]:
    """The records of one run. `wall_ms` is read only with `clock="real"` (tests inject one)."""
    return _Run(cfg, wall_ms).records()


@dataclass(order=True, slots=True)
class _Due:
    """A scenario transfer waiting for its event time; ordered by (due, seq)."""

    due_ms: int
    seq: int
    ref: ScenarioRef
    amount_cents: int


class _Run:
    """State of one run: the clock, pending scenario transfers, and the random streams."""

    def __init__(self, cfg: GeneratorConfig, wall_ms: WallClock) -> None:
        self.cfg = cfg
        self.wall_ms = wall_ms
        # String seeds hash with SHA-512: stable across processes, unlike hash().
        self.traffic = random.Random(f"traffic/{cfg.seed}")
        self.plans = random.Random(f"scenarios/{cfg.seed}")
        self.faults = random.Random(f"faults/{cfg.seed}")
        self.render_time = TimestampFormatter(cfg.layout)
        self.ids = [str(i) for i in range(cfg.accounts)]
        self.max_dollars = cfg.max_amount_cents // 100
        self.small_dollars = min(SMALL_AMOUNT_MAX_DOLLARS, self.max_dollars)
        self.pending: list[_Due] = []
        self.seq = 0
        self.last_in_order_ms: int | None = None  # largest event time shown so far

    def records(self) -> Iterator[Record]:
        cfg = self.cfg
        real = cfg.clock == "real"
        origin = self.wall_ms() if real else cfg.start_ms
        end_ms = None if cfg.duration is None else origin + round(cfg.duration * 1000)
        slot_ms = cfg.scenario_slot_ms()
        next_scenario = 0
        scenario_limit = None if cfg.scenarios_every is not None else cfg.scenarios
        clock = origin  # time of the latest in-order event (internal, with milliseconds)
        next_normal = origin  # simulated clock: when the next normal transfer happens
        emitted = 0
        fault_share = cfg.malformed + cfg.out_of_order
        while cfg.count is None or emitted < cfg.count:
            now = max(self.wall_ms(), clock) if real else next_normal
            remaining = None if cfg.count is None else cfg.count - emitted
            # Start every scenario whose slot begins before the next normal transfer.
            while slot_ms is not None and (
                scenario_limit is None or next_scenario < scenario_limit
            ):
                starts_at = origin + next_scenario * slot_ms + slot_ms // 10
                if starts_at > now:
                    break
                self._start_scenario(next_scenario, starts_at, slot_ms, remaining, end_ms)
                next_scenario += 1
            ended = end_ms is not None and now > end_ms
            if ended and not self.pending:
                return
            # With a count, the last records are kept for started scenarios so each completes.
            forced = ended or (remaining is not None and remaining <= len(self.pending))
            if not forced and fault_share:
                roll = self.faults.random()
                if roll < cfg.malformed:
                    yield self._malformed(clock)
                    emitted += 1
                    continue
                if roll < fault_share and self.last_in_order_ms is not None:
                    yield self._out_of_order(self.last_in_order_ms)
                    emitted += 1
                    continue
            if self.pending and (forced or self.pending[0].due_ms <= now):
                due = heapq.heappop(self.pending)
                clock = max(now if real else due.due_ms, clock)
                yield self._scenario_transfer(due, clock)
            else:
                clock = now
                yield self._normal(clock)
                if not real:
                    next_normal = clock + round(self.traffic.expovariate(1.0 / cfg.mean_gap_ms))
            emitted += 1

    def _start_scenario(
        self, index: int, starts_at: int, slot_ms: int, remaining: int | None, end_ms: int | None
    ) -> None:
        cfg = self.cfg
        ref, transfers = plan_scenario(
            self.plans,
            index,
            normal_accounts=cfg.accounts,
            slot_ms=slot_ms,
            near_misses=cfg.near_misses,
            cents=cfg.cents,
        )
        # A scenario cut short by the end of the run would leave false ground truth: skip it.
        if remaining is not None and remaining - len(self.pending) < len(transfers):
            return
        if end_ms is not None and starts_at + transfers[-1].offset_ms > end_ms:
            return
        for transfer in transfers:
            self._push(starts_at, ref, transfer)

    def _push(self, starts_at: int, ref: ScenarioRef, transfer: PlannedTransfer) -> None:
        self.seq += 1
        due = _Due(starts_at + transfer.offset_ms, self.seq, ref, transfer.amount_cents)
        heapq.heappush(self.pending, due)

    def _note_in_order(self, ms: int) -> int:
        shown = shown_event_time(ms, self.cfg.layout)
        if self.last_in_order_ms is None or shown > self.last_in_order_ms:
            self.last_in_order_ms = shown
        return shown

    def _normal(self, ms: int) -> Record:
        sender, receiver = self._pair(self.traffic)
        cents = self._amount(self.traffic)
        shown = self._note_in_order(ms)
        return self._record(shown, sender, receiver, cents, "normal", self.traffic)

    def _scenario_transfer(self, due: _Due, ms: int) -> Record:
        ref = due.ref
        shown = self._note_in_order(ms)
        amount = format_amount(due.amount_cents, two_decimals=self.plans.random() < 0.5)
        value = f"{self.render_time(shown)};{ref.sender};{ref.receiver};{amount}".encode()
        key = f"{ref.sender}:{ref.receiver}".encode() if self.cfg.keyed else None
        return Record(key, value, shown, ref.type, None, due.amount_cents, ref)

    def _out_of_order(self, latest_ms: int) -> Record:
        limit = self.cfg.out_of_order_max_ms
        if self.cfg.layout == "rfc850":
            behind = 1000 * self.faults.randint(1, limit // 1000)  # stays exactly representable
        else:
            behind = self.faults.randint(1, limit)
        shown = max(0, latest_ms - behind)
        sender, receiver = self._pair(self.faults)
        cents = self._amount(self.faults)
        return self._record(shown, sender, receiver, cents, "out_of_order", self.faults)

    def _malformed(self, ms: int) -> Record:
        reason = self.faults.choice(DLQ_REASONS)
        sender, receiver = self._pair(self.faults)
        shown = shown_event_time(ms, self.cfg.layout)
        value = malformed_value(
            self.faults,
            reason,
            event_ms=shown,
            timestamp=self.render_time(shown),
            sender=sender,
            receiver=receiver,
            amount=format_amount(self._amount(self.faults)),
        )
        # Unkeyed: a broken line has no trustworthy pair to key it by.
        return Record(None, value, None, "malformed", reason)

    def _record(
        self,
        shown_ms: int,
        sender: str,
        receiver: str,
        cents: int,
        kind: RecordKind,
        rng: random.Random,
    ) -> Record:
        two_decimals = cents % 10 == 0 and cents % 100 != 0 and rng.random() < 0.5
        amount = format_amount(cents, two_decimals=two_decimals)
        value = f"{self.render_time(shown_ms)};{sender};{receiver};{amount}".encode()
        key = f"{sender}:{receiver}".encode() if self.cfg.keyed else None
        return Record(key, value, shown_ms, kind, None, cents)

    def _pair(self, rng: random.Random) -> tuple[str, str]:
        count = len(self.ids)
        sender = int(rng.random() * count)
        receiver = int(rng.random() * (count - 1))
        if receiver >= sender:  # skip the sender itself: no self-transfers
            receiver += 1
        return self.ids[sender], self.ids[receiver]

    def _amount(self, rng: random.Random) -> int:
        # Log-uniform dollars: most transfers are tens or hundreds of dollars, as in real
        # payment data, so a pair's normal traffic rarely adds up to $10,000 in one window
        # even at thousands of records per second. The float is only the random draw.
        if rng.random() < LARGE_AMOUNT_SHARE:
            low, high = self.small_dollars, self.max_dollars
        else:
            low, high = 1, self.small_dollars
        dollars = min(high, int(low * math.exp(rng.random() * math.log((high + 1) / low))))
        cents = dollars * 100
        if self.cfg.cents and rng.random() < CENTS_SHARE:
            cents += 1 + int(rng.random() * 99)
        return min(cents, self.cfg.max_amount_cents)
