"""Settings of one generator run: what to generate, how much, and how the event clock behaves.

`GeneratorConfig` is the only input of the pure `generator.stream.generate`; the CLI in
`generator.__main__` builds it from flags (transport flags such as `--rate` stay out of it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeAlias

from generator.errors import ConfigError
from generator.formats import (
    LAYOUTS,
    RFC850_FIRST_YEAR,
    RFC850_LAST_YEAR,
    Layout,
    format_rfc3339,
)

Clock: TypeAlias = Literal["real", "simulated"]
CLOCKS: tuple[Clock, ...] = ("real", "simulated")

DEFAULT_START_MS = 1_500_768_000_000  # 2017-07-23T00:00:00Z, the day of the lab's example line
MAX_AMOUNT_CENTS_LIMIT = 1_000_000_000 * 100  # the parser's sane upper bound: $1,000,000,000

# Scenario sizes used to estimate how much event time a `count`-bounded run covers.
AVERAGE_SCENARIO_TRANSFERS = 13

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that decides the records of a run; the same config and seed give the same bytes.

    - `count` / `duration`: stop after this many records / seconds of event time (with the real
      clock, event time is wall time); both None means an endless stream.
    - `clock`: `simulated` advances event time by random gaps of mean `mean_gap_ms` from
      `start_ms`, independent of how fast records are sent; `real` stamps each record with the
      wall clock at the moment it is generated (just before it is sent).
    - `max_amount_cents`: ceiling of a normal transfer; most are tens or hundreds of dollars,
      1 % are above $2,000.
    - `scenarios` (over a bounded run) or `scenarios_every` (seconds of event time): injected
      structuring cases; with `near_misses`, every third one totals just under $10,000 instead.
    - `malformed` / `out_of_order`: fractions of records that are broken / stamped up to
      `out_of_order_max_ms` behind the clock.
    - `keyed`: key records by `SENDER:RECEIVER` (False: no key, as the original Go generator).
    - `cents`: some amounts carry cents (`7810.5`); False: whole dollars only.
    """

    count: int | None = None
    duration: float | None = None
    accounts: int = 100
    seed: int = 0
    layout: Layout = "rfc850"
    clock: Clock = "simulated"
    start_ms: int = DEFAULT_START_MS
    mean_gap_ms: int = 1000
    max_amount_cents: int = 5_000_00
    scenarios: int = 0
    scenarios_every: float | None = None
    near_misses: bool = True
    malformed: float = 0.0
    out_of_order: float = 0.0
    out_of_order_max_ms: int = 60_000
    keyed: bool = True
    cents: bool = True

    def __post_init__(self) -> None:
        _validate(self)

    def scenario_slot_ms(self) -> int | None:
        """Event time set aside for each scenario, or None when the run injects none.

        With `scenarios=N` the run's expected event-time span is cut into N equal slots, which
        is why N needs a bounded run; with `scenarios_every` a slot is that many seconds.
        """
        if self.scenarios_every is not None:
            return max(1, round(self.scenarios_every * 1000))
        if self.scenarios == 0:
            return None
        return max(1, self.expected_span_ms() // self.scenarios)

    def expected_span_ms(self) -> int:
        """Event time a bounded run is expected to cover (exact for `duration`)."""
        spans: list[int] = []
        if self.duration is not None:
            spans.append(round(self.duration * 1000))
        if self.count is not None and self.clock == "simulated":
            # Scenario, malformed and out-of-order records do not advance the clock.
            scenario_records = self.scenarios * AVERAGE_SCENARIO_TRANSFERS
            in_order = max(self.count - scenario_records, self.count // 2)
            in_order = math.floor(in_order * (1.0 - self.malformed - self.out_of_order))
            # 10 % short of the estimate, so the last scenario rarely meets the end of the run.
            spans.append(max(1, in_order) * self.mean_gap_ms * 9 // 10)
        if not spans:
            raise ConfigError("a run without --count or --duration has no expected span")
        return min(spans)


def _validate(cfg: GeneratorConfig) -> None:
    problems: list[str] = []
    if cfg.count is not None and cfg.count < 0:
        problems.append(f"count must be >= 0, got {cfg.count}")
    if cfg.duration is not None and not (cfg.duration > 0 and math.isfinite(cfg.duration)):
        problems.append(f"duration must be a positive number of seconds, got {cfg.duration}")
    if cfg.accounts < 2:
        problems.append(
            f"accounts must be >= 2 (a transfer needs two accounts), got {cfg.accounts}"
        )
    if cfg.layout not in LAYOUTS:
        problems.append(f"layout must be one of {', '.join(LAYOUTS)}, got {cfg.layout!r}")
    if cfg.clock not in CLOCKS:
        problems.append(f"clock must be one of {', '.join(CLOCKS)}, got {cfg.clock!r}")
    if cfg.start_ms < 0:
        problems.append(f"start must not be before 1970, got {cfg.start_ms} ms")
    elif cfg.layout == "rfc850" and cfg.clock == "simulated":
        year = (_EPOCH + timedelta(milliseconds=cfg.start_ms)).year
        if not RFC850_FIRST_YEAR <= year <= RFC850_LAST_YEAR:
            problems.append(
                f"start {format_rfc3339(cfg.start_ms)} cannot be written with RFC 850's"
                f" two-digit year; pick a start in {RFC850_FIRST_YEAR}..{RFC850_LAST_YEAR}"
            )
    if cfg.mean_gap_ms < 1:
        problems.append(f"mean gap must be >= 1 ms, got {cfg.mean_gap_ms}")
    if not 100 <= cfg.max_amount_cents <= MAX_AMOUNT_CENTS_LIMIT:
        problems.append(
            f"max amount must be between 1 and 1000000000 dollars, got {cfg.max_amount_cents} cents"
        )
    problems.extend(_validate_scenarios(cfg))
    problems.extend(_validate_faults(cfg))
    if problems:
        raise ConfigError("; ".join(problems))


def _validate_scenarios(cfg: GeneratorConfig) -> list[str]:
    problems: list[str] = []
    if cfg.scenarios < 0:
        problems.append(f"scenarios must be >= 0, got {cfg.scenarios}")
    if cfg.scenarios_every is not None:
        if not (cfg.scenarios_every > 0 and math.isfinite(cfg.scenarios_every)):
            problems.append(f"scenarios-every must be > 0 seconds, got {cfg.scenarios_every}")
        if cfg.scenarios > 0:
            problems.append("give either scenarios or scenarios-every, not both")
    if cfg.scenarios > 0 and cfg.scenarios_every is None:
        # N scenarios are spread over the run, so the run's event-time span must be known.
        if cfg.clock == "real" and cfg.duration is None:
            problems.append(
                "scenarios=N with the real clock needs a duration (the span of a count-bounded"
                " run depends on the send rate); or use scenarios-every"
            )
        elif cfg.count is None and cfg.duration is None:
            problems.append("scenarios=N needs count or duration; or use scenarios-every")
    return problems


def _validate_faults(cfg: GeneratorConfig) -> list[str]:
    problems: list[str] = []
    for name, fraction in (("malformed", cfg.malformed), ("out-of-order", cfg.out_of_order)):
        if not 0.0 <= fraction <= 1.0:
            problems.append(f"{name} must be a fraction between 0 and 1, got {fraction}")
    if cfg.malformed + cfg.out_of_order >= 1.0:
        problems.append("malformed + out-of-order must leave room for normal records (sum < 1)")
    if cfg.out_of_order_max_ms < 1:
        problems.append(f"out-of-order max must be >= 1 ms, got {cfg.out_of_order_max_ms}")
    elif cfg.layout == "rfc850" and cfg.out_of_order_max_ms < 1000:
        problems.append("out-of-order max must be >= 1000 ms with rfc850 (it has whole seconds)")
    return problems
