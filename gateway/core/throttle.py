"""Slowing down clients that keep failing: guessed aliases, guessed passwords."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MAX_DELAY = 30.0


def backoff(failures: int, free: int, base: float, cap: float = MAX_DELAY) -> float:
    """Seconds to wait before answering the n-th failure: none for the first `free` ones
    (typos cost nothing), then doubling from `base`, never more than `cap`."""
    if failures <= free or base <= 0:
        return 0.0
    return float(min(base * 2 ** (failures - free - 1), cap))


@dataclass
class FailureThrottle:
    """Failures per key (a client address, a user name) within a sliding window. A key
    that reaches `limit` is locked for `lockout` seconds. Kept in memory per process: a
    restart forgives, which the window would do soon anyway."""

    free: int
    limit: int
    window: float
    lockout: float
    now: Callable[[], float] = time.monotonic
    max_keys: int = 100_000  # bounds memory under a flood of distinct keys
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)

    def locked(self, keys: Iterable[str]) -> bool:
        now = self.now()
        return any(self._locked_until.get(key, 0.0) > now for key in keys)

    def failed(self, keys: Iterable[str]) -> tuple[float, list[str]]:
        """Record one failure for each key: the delay before answering it, and the keys that
        this failure locked."""
        now = self.now()
        if len(self._failures) >= self.max_keys:
            self._forget_before(now - self.window)
        delay, newly_locked = 0.0, []
        for key in keys:
            times = self._failures.setdefault(key, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            times.append(now)
            if len(times) >= self.limit and self._locked_until.get(key, 0.0) <= now:
                self._locked_until[key] = now + self.lockout
                newly_locked.append(key)
            delay = max(delay, backoff(len(times), self.free, 1.0))
        return delay, newly_locked

    def _forget_before(self, cutoff: float) -> None:
        for key in [k for k, times in self._failures.items() if times[-1] <= cutoff]:
            del self._failures[key]
        now = self.now()
        for key in [k for k, until in self._locked_until.items() if until <= now]:
            del self._locked_until[key]
