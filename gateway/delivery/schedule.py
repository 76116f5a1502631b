"""Retry timing: pure functions of the attempt count and the configured schedule."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

JITTER = 0.1  # +-10%, so that a burst of failures does not retry in lockstep


def retry_delay(attempts: int, schedule: Sequence[float], rng: random.Random) -> float:
    """Seconds before the next try, after `attempts` failed tries; the last step repeats."""
    step = schedule[min(max(attempts, 1), len(schedule)) - 1]
    return step * (1 + rng.uniform(-JITTER, JITTER))


def should_give_up(queued_at: datetime, now: datetime, give_up_after: float) -> bool:
    return now - queued_at >= timedelta(seconds=give_up_after)
