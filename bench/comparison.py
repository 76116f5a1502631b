"""The results of `python -m bench.postfix`: medians over repetitions per target and mode,
ratios to Postfix, a table for people and a document for the JSON file."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from bench.measurement import MODES, Measurement
from bench.report import formatted, plain_table, rounded

REFERENCE = "postfix"


@dataclass(frozen=True, slots=True)
class Summary:
    """One target in one mode, over its repetitions: medians, and the range of the rate."""

    target: str
    mode: str
    repetitions: int
    messages: int
    delivered: int
    rate: float | None  # delivered msg/s
    rate_low: float | None
    rate_high: float | None
    cpu_ms: float | None  # server CPU ms per delivered message
    database_cpu_ms: float | None  # PostgreSQL's, gateway-postgresql only
    peak_rss_mib: float | None
    pss_mib: float | None
    problems: int  # measurements with something wrong

    def as_dict(self, reference: Summary | None) -> dict[str, Any]:
        return {
            "target": self.target,
            "mode": self.mode,
            "repetitions": self.repetitions,
            "messages": self.messages,
            "delivered": self.delivered,
            "msg_per_s_median": rounded(self.rate, 2),
            "msg_per_s_min": rounded(self.rate_low, 2),
            "msg_per_s_max": rounded(self.rate_high, 2),
            "cpu_ms_per_message_median": rounded(self.cpu_ms, 3),
            "database_cpu_ms_per_message_median": rounded(self.database_cpu_ms, 3),
            "peak_rss_mib_median": rounded(self.peak_rss_mib, 1),
            "pss_mib_at_end_median": rounded(self.pss_mib, 1),
            "measurements_with_problems": self.problems,
            "msg_per_s_vs_postfix": rounded(ratio(self.rate, reference, "rate"), 4),
            "cpu_ms_per_message_vs_postfix": rounded(ratio(self.cpu_ms, reference, "cpu_ms"), 2),
        }


def summarize(measurements: Sequence[Measurement]) -> list[Summary]:
    """A Summary per (target, mode), in the order the measurements were taken."""
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for measurement in measurements:
        groups.setdefault((measurement.target, measurement.mode), []).append(measurement)
    return [_summary(target, mode, group) for (target, mode), group in groups.items()]


def _summary(target: str, mode: str, group: Sequence[Measurement]) -> Summary:
    def median(figure: Callable[[Measurement], float | None]) -> float | None:
        present = [value for value in map(figure, group) if value is not None]
        return statistics.median(present) if present else None

    rates = [m.rate for m in group if m.rate is not None]
    return Summary(
        target=target,
        mode=mode,
        repetitions=len(group),
        messages=sum(m.messages for m in group),
        delivered=sum(m.delivered for m in group),
        rate=median(lambda m: m.rate),
        rate_low=min(rates, default=None),
        rate_high=max(rates, default=None),
        cpu_ms=median(lambda m: m.cpu_ms_per_message),
        database_cpu_ms=median(lambda m: m.ms_per_message(m.database_cpu_seconds)),
        peak_rss_mib=median(lambda m: m.peak_rss_mib),
        pss_mib=median(lambda m: m.pss_mib),
        problems=sum(1 for m in group if m.problems()),
    )


def reference_of(summaries: Sequence[Summary], mode: str) -> Summary | None:
    return next((s for s in summaries if s.target == REFERENCE and s.mode == mode), None)


def ratio(value: float | None, reference: Summary | None, attribute: str) -> float | None:
    """`value` over the reference's figure of the same name; None where either is missing."""
    base = None if reference is None else getattr(reference, attribute)
    return value / base if value is not None and base else None


_HEADERS = ("msg/s", "min-max", "ratio", "CPU\nms/msg", "ratio", "RSS\nMiB", "PSS\nMiB")


def render(summaries: Sequence[Summary], mode: str) -> Table:
    """The medians of one mode. RSS: the peak sum of VmHWM; PSS: at the end of the load."""
    table = plain_table(
        MODES[mode], "ratio: to Postfix; RSS: peak sum of VmHWM; PSS: sum at the end"
    )
    table.add_column("target", no_wrap=True)
    for header in _HEADERS:
        table.add_column(header, justify="right", no_wrap=True)
    reference = reference_of(summaries, mode)
    for row in (s for s in summaries if s.mode == mode):
        table.add_row(
            row.target,
            formatted(row.rate, "{:.1f}"),
            f"{formatted(row.rate_low, '{:.0f}')}-{formatted(row.rate_high, '{:.0f}')}",
            formatted(ratio(row.rate, reference, "rate"), "{:.3f}x"),
            formatted(row.cpu_ms, "{:.2f}"),
            formatted(ratio(row.cpu_ms, reference, "cpu_ms"), "{:.1f}x"),
            formatted(row.peak_rss_mib, "{:.0f}"),
            formatted(row.pss_mib, "{:.0f}"),
        )
    return table


def notes(summaries: Sequence[Summary]) -> list[str]:
    """What the table leaves out: measurements that went wrong, PostgreSQL's own CPU."""
    found = [
        f"[red]{s.target}, {MODES[s.mode]}: {s.problems} of {s.repetitions} measurements "
        f"lost, refused or duplicated messages ({s.delivered} of {s.messages} delivered)[/red]"
        for s in summaries
        if s.problems
    ]
    found.extend(
        f"{s.target}, {MODES[s.mode]}: PostgreSQL spent a further "
        f"{s.database_cpu_ms:.2f} ms CPU per message (all of its CPU in that time)"
        for s in summaries
        if s.database_cpu_ms is not None
    )
    return found
