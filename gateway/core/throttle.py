"""Slowing down clients that keep failing: guessed aliases, guessed passwords."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_DELAY = 30.0


def backoff(failures: int, free: int, base: float, cap: float = MAX_DELAY) -> float:
    """Seconds to wait before answering the n-th failure: none for the first `free` ones
    (typos cost nothing), then doubling from `base`, never more than `cap`."""
    if failures <= free or base <= 0:
        return 0.0
    return float(min(base * 2 ** (failures - free - 1), cap))


@dataclass(frozen=True, slots=True)
class ThrottleRules:
    """Each failure against one key (a client address, a user name) past the first `free`
    within `window` is answered later and later, from `base` seconds; `limit` of them within
    `window` lock the key for `lockout` (no `limit`: slowed, never locked)."""

    free: int
    window: timedelta
    base: float = 1.0
    limit: int | None = None
    lockout: timedelta = timedelta(0)

    @property
    def memory(self) -> timedelta:
        """How far back failures can still matter."""
        return self.window + self.lockout


def locked_until(failures: Sequence[datetime], rules: ThrottleRules) -> datetime | None:
    """Until when a key with these failure times (oldest first) is locked: `lockout` after
    the failure that made `limit` of them within `window`, the latest such one."""
    limit = rules.limit
    if limit is None:
        return None
    until = None
    for index in range(limit - 1, len(failures)):
        if failures[index] - failures[index - limit + 1] < rules.window:
            until = failures[index] + rules.lockout
    return until


def recent(failures: Sequence[datetime], rules: ThrottleRules, now: datetime) -> int:
    """How many failures fall within the window ending now."""
    return sum(1 for at in failures if at > now - rules.window)
