"""How many cases the fuzz tests run: CI's profile, or BSM_FUZZ_SCALE times it (make fuzz)."""

from __future__ import annotations

import os

SCALE = max(1, int(os.environ.get("BSM_FUZZ_SCALE", "1")))


def cases(in_ci: int) -> int:
    return in_ci * SCALE


def time_limit(in_ci: float) -> float:
    """pytest-timeout's limit for a fuzz test: its CI share, scaled with it."""
    return in_ci * SCALE
