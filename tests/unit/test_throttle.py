from __future__ import annotations

from gateway.core.throttle import MAX_DELAY, FailureThrottle, backoff


def test_first_failures_are_free_then_the_wait_doubles_up_to_a_cap() -> None:
    delays = [backoff(n, 3, 1.0) for n in range(1, 12)]
    assert delays[:3] == [0.0] * 3
    assert delays[3:7] == [1.0, 2.0, 4.0, 8.0]
    assert max(delays) == MAX_DELAY
    assert delays == sorted(delays)


def test_a_zero_base_turns_it_off() -> None:
    assert backoff(100, 3, 0.0) == 0.0


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_key_is_locked_at_the_limit_within_the_window_and_freed_after_the_lockout() -> None:
    clock = Clock()
    throttle = FailureThrottle(free=1, limit=3, window=60, lockout=300, now=clock)
    assert throttle.failed(["client:a", "user:u"]) == (0.0, [])
    assert throttle.failed(["client:a", "user:u"]) == (1.0, [])
    assert not throttle.locked(["client:a"])
    assert throttle.failed(["client:a", "user:v"]) == (2.0, ["client:a"])
    assert throttle.locked(["client:a"])
    assert throttle.locked(["client:b", "client:a"])
    assert not throttle.locked(["user:u", "client:b"])  # two failures for u: under the limit
    clock.t += 301
    assert not throttle.locked(["client:a"])


def test_failures_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    throttle = FailureThrottle(free=0, limit=2, window=60, lockout=300, now=clock)
    throttle.failed(["user:u"])
    clock.t += 61
    assert throttle.failed(["user:u"]) == (1.0, [])
    assert not throttle.locked(["user:u"])


def test_memory_stays_bounded_under_a_flood_of_keys() -> None:
    clock = Clock()
    throttle = FailureThrottle(free=0, limit=5, window=10, lockout=10, now=clock, max_keys=100)
    for n in range(1000):
        clock.t += 1
        throttle.failed([f"client:{n}"])
    assert len(throttle._failures) <= 100
