from __future__ import annotations

from gateway.inbound.handler import FREE_REFUSALS, MAX_REFUSAL_DELAY, refusal_delay


def test_first_refusals_are_free_then_the_wait_doubles_up_to_a_cap() -> None:
    delays = [refusal_delay(n, 1.0) for n in range(1, 12)]
    assert delays[:FREE_REFUSALS] == [0.0] * FREE_REFUSALS
    assert delays[FREE_REFUSALS : FREE_REFUSALS + 4] == [1.0, 2.0, 4.0, 8.0]
    assert max(delays) == MAX_REFUSAL_DELAY
    assert delays == sorted(delays)


def test_a_zero_base_turns_it_off() -> None:
    assert refusal_delay(100, 0.0) == 0.0
