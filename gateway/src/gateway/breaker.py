"""A circuit breaker per upstream (no I/O; the clock is injectable for tests).

closed:    requests pass; ``failures`` consecutive failures open the circuit.
open:      requests are refused at once (503 with Retry-After) for ``open_s`` seconds.
half-open: one trial request passes; its success closes the circuit, its failure reopens it.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, failures: int = 5, open_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = max(1, failures)
        self.open_s = open_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.open_s:
            return "half-open"
        return "open"

    def retry_after(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.open_s - self._clock())

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def failure(self) -> None:
        self._failures += 1
        if self._trial_running or self._failures >= self.threshold:
            self._opened_at = self._clock()
        self._trial_running = False

    def release(self) -> None:
        """The request ended without telling success or failure (the client went away)."""
        self._trial_running = False
