"""Liveness and readiness of one gateway process, as the metrics listener answers them on
/healthz and /readyz (the container's HEALTHCHECK, an orchestrator's probes).

Live: the event loop runs (it beats every second). Ready: every probe the composition root
gave passes: the database answers with the schema this code needs, the queue moves, the
listeners are bound. A probe returns None when all is well, or what is wrong."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Probe = Callable[[], str | None]

BEAT_EVERY = 1.0  # seconds between the event loop's beats


@dataclass(frozen=True, slots=True)
class Finding:
    probe: str
    problem: str | None  # None: passed


class Health:
    def __init__(
        self,
        probes: Mapping[str, Probe],
        *,
        stalled_after: float = 10.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probes = dict(probes)
        self._stalled_after = stalled_after
        self._now = now
        self._last_beat = now()

    def beat(self) -> None:
        """Called from the event loop: it still runs."""
        self._last_beat = self._now()

    def live(self) -> str | None:
        silent = self._now() - self._last_beat
        if silent > self._stalled_after:
            return f"the event loop has not run for {silent:.0f} s"
        return None

    def ready(self) -> list[Finding]:
        findings = []
        for name, probe in self._probes.items():
            try:
                problem = probe()
            except Exception as error:  # a probe that fails says why, the others still run
                problem = f"{type(error).__name__}: {error}".splitlines()[0][:200]
            findings.append(Finding(name, problem))
        live = self.live()
        if live is not None:
            findings.append(Finding("event_loop", live))
        return findings
