"""Liveness and readiness findings (gateway.obs.health)."""

from __future__ import annotations

from gateway.obs.health import Finding, Health


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_loop_that_stops_beating_is_not_live() -> None:
    ticks = Ticks()
    health = Health({}, stalled_after=10, now=ticks)
    ticks.now += 9
    assert health.live() is None
    ticks.now += 2
    assert health.live() == "the event loop has not run for 11 s"
    assert health.ready() == [Finding("event_loop", "the event loop has not run for 11 s")]
    health.beat()
    assert health.live() is None


def test_every_probe_runs_and_a_failing_one_says_why() -> None:
    def broken() -> str | None:
        raise ConnectionRefusedError("connection refused\nsecond line")

    health = Health({"database": broken, "queue": lambda: None, "listeners": lambda: "mx down"})
    assert health.ready() == [
        Finding("database", "ConnectionRefusedError: connection refused"),
        Finding("queue", None),
        Finding("listeners", "mx down"),
    ]
