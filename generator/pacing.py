"""Send-rate control for the generator: a token bucket read by the async send loop.

Pure (the clock is injected) so its accuracy is unit-tested; `generator.sink` asks it how many
records may go now and how long to sleep otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Tokens saved while the loop was busy may be spent in one burst of at most this long; a longer
# stall (a GC pause, a slow broker) is not caught up, which would be a visible spike.
BURST_SECONDS = 0.1


class TokenBucket:
    """Grants `rate` records per second on average, in bursts of at most `rate * burst` records.

    Asking in batches (`take`) instead of sleeping per record keeps the rate accurate at
    thousands per second, where an event-loop sleep is coarser than the gap between records.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst_seconds: float = BURST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.capacity = max(1.0, rate * burst_seconds)
        self._clock = clock
        self._last = clock()
        self._tokens = 1.0  # the first record goes at once

    def take(self, limit: int) -> int:
        """Consume and return up to `limit` whole tokens available now (possibly 0)."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        granted = min(limit, int(self._tokens))
        self._tokens -= granted
        return granted

    def wait_seconds(self) -> float:
        """Time until the next whole token, as of the last `take`."""
        return max(0.0, (1.0 - self._tokens) / self.rate)
