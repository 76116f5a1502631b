from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from gateway.delivery.schedule import JITTER, retry_delay, should_give_up

SCHEDULE = [60.0, 300.0, 900.0]


def test_delay_follows_the_schedule_within_jitter_and_repeats_the_last_step() -> None:
    rng = random.Random(7)
    for attempts, step in [(1, 60), (2, 300), (3, 900), (4, 900), (40, 900)]:
        delay = retry_delay(attempts, SCHEDULE, rng)
        assert step * (1 - JITTER) <= delay <= step * (1 + JITTER)


def test_jitter_spreads_retries() -> None:
    rng = random.Random(1)
    assert len({round(retry_delay(1, SCHEDULE, rng), 3) for _ in range(20)}) > 10


def test_give_up_age() -> None:
    queued = datetime(2026, 11, 1, tzinfo=UTC)
    five_days = 5 * 86400
    assert not should_give_up(queued, queued + timedelta(days=5, seconds=-1), five_days)
    assert should_give_up(queued, queued + timedelta(days=5), five_days)
