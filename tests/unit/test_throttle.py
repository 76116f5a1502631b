from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.core.clock import FrozenClock
from gateway.core.throttle import MAX_DELAY, ThrottleRules, backoff
from gateway.storage.client_failures import FailureThrottle
from gateway.storage.database import Database
from gateway.storage.migrate import open_database
from gateway.storage.schema import ClientFailure


def test_first_failures_are_free_then_the_wait_doubles_up_to_a_cap() -> None:
    delays = [backoff(n, 3, 1.0) for n in range(1, 12)]
    assert delays[:3] == [0.0] * 3
    assert delays[3:7] == [1.0, 2.0, 4.0, 8.0]
    assert max(delays) == MAX_DELAY
    assert delays == sorted(delays)


def test_a_zero_base_turns_it_off() -> None:
    assert backoff(100, 3, 0.0) == 0.0


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'gateway.db'}")
    yield database
    database.dispose()


def _rules(free: int, limit: int, window: int = 60, lockout: int = 300) -> ThrottleRules:
    return ThrottleRules(
        free, timedelta(seconds=window), limit=limit, lockout=timedelta(seconds=lockout)
    )


START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_a_key_is_locked_at_the_limit_within_the_window_and_freed_after_the_lockout(
    database: Database,
) -> None:
    clock = FrozenClock(START)
    throttle = FailureThrottle(database, clock, "smtp", _rules(free=1, limit=3))
    assert throttle.failed(["client:a", "user:u"]) == (0.0, [])
    assert throttle.failed(["client:a", "user:u"]) == (1.0, [])
    assert not throttle.locked(["client:a"])
    assert throttle.failed(["client:a", "user:v"]) == (2.0, ["client:a"])
    assert throttle.locked(["client:a"])
    assert throttle.locked(["client:b", "client:a"])
    assert not throttle.locked(["user:u", "client:b"])  # two failures for u: under the limit
    clock.advance(timedelta(seconds=301))
    assert not throttle.locked(["client:a"])


def test_every_process_sees_the_same_failures_but_each_scope_its_own(database: Database) -> None:
    clock = FrozenClock(START)
    one, other = (FailureThrottle(database, clock, "smtp", _rules(0, 2)) for _ in range(2))
    console = FailureThrottle(database, clock, "console", _rules(0, 2))
    one.failed(["client:a"])
    assert other.failed(["client:a"]) == (2.0, ["client:a"])
    assert one.locked(["client:a"]) and other.locked(["client:a"])
    assert not console.locked(["client:a"])


def test_failures_older_than_the_window_do_not_count(database: Database) -> None:
    clock = FrozenClock(START)
    throttle = FailureThrottle(database, clock, "smtp", _rules(free=0, limit=2))
    throttle.failed(["user:u"])
    clock.advance(timedelta(seconds=61))
    assert throttle.failed(["user:u"]) == (1.0, [])
    assert not throttle.locked(["user:u"])


def test_keys_are_kept_as_hashes_and_old_failures_are_forgotten(database: Database) -> None:
    clock = FrozenClock(START)
    throttle = FailureThrottle(database, clock, "smtp", _rules(0, 5, window=10, lockout=10))
    for n in range(50):
        throttle.failed([f"client:192.0.2.{n}", "user:kim@shop.example"])
    with database.reading() as session:
        keys = set(session.scalars(select(ClientFailure.key)))
    assert all(len(key) == 64 and "shop" not in key and "192" not in key for key in keys)
    clock.advance(timedelta(minutes=10))
    throttle.failed(["client:198.51.100.1"])
    with database.reading() as session:
        assert session.scalar(select(func.count()).select_from(ClientFailure)) == 1


def test_rules_without_a_limit_slow_a_key_down_from_their_base_and_never_lock_it(
    database: Database,
) -> None:
    clock = FrozenClock(START)
    rules = ThrottleRules(2, timedelta(seconds=60), base=0.5)
    guesses = FailureThrottle(database, clock, "rcpt", rules)
    answers = [guesses.failed(["client:a"]) for _ in range(6)]
    assert [delay for delay, _ in answers] == [0.0, 0.0, 0.5, 1.0, 2.0, 4.0]
    assert all(newly == [] for _, newly in answers)
    assert not guesses.locked(["client:a"])
    clock.advance(timedelta(seconds=61))
    assert guesses.failed(["client:a"]) == (0.0, [])  # the window has passed: free again


def test_a_scope_forgets_only_its_own_failures(database: Database) -> None:
    """Guesses are remembered 10 minutes, logins 30: a guess must not end a lockout."""
    clock = FrozenClock(START)
    logins = FailureThrottle(database, clock, "smtp", _rules(0, 2, window=900, lockout=900))
    guesses = FailureThrottle(database, clock, "rcpt", ThrottleRules(3, timedelta(minutes=10)))
    logins.failed(["client:a"])
    logins.failed(["client:a"])
    clock.advance(timedelta(minutes=11))
    guesses.failed(["client:b"])
    assert logins.locked(["client:a"])
