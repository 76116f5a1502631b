"""The tables and notes of `python -m bench.scaling`, shaped from the summaries that also go
into its JSON file (plain dicts: a saved run can be shown again)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from bench.report import formatted, plain_table

Summary = Mapping[str, Any]

# (header, summary keys, format) of the sweep table's columns; two keys: "p50/p99".
SWEEP_COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("sessions", ("sessions",), "{}"),
    ("accepted\nmsg/s", ("accept_msg_per_s",), "{:.1f}"),
    ("delivered\nmsg/s", ("end_to_end_msg_per_s",), "{:.1f}"),
    ("accept\np50/p99 ms", ("accept_p50_ms", "accept_p99_ms"), "{:.0f}"),
    ("end-to-end\np50/p99 ms", ("end_to_end_p50_ms", "end_to_end_p99_ms"), "{:.0f}"),
    ("CPU ms\nper msg", ("cpu_ms_per_message",), "{:.1f}"),
    ("cores busy\ngw/load/all", ("cores_busy", "load_cores_busy", "machine_cores_busy"), "{:.2f}"),
)
WATCHED_SESSIONS = 50  # the level whose p99 accept latency the notes state


def sweep_rows(levels: Sequence[Summary]) -> list[list[str]]:
    """One row of figures per level."""
    return [[_cell(level, keys, fmt) for _, keys, fmt in SWEEP_COLUMNS] for level in levels]


def _cell(level: Summary, keys: tuple[str, ...], fmt: str) -> str:
    values = [level.get(key) for key in keys]
    return "n/a" if None in values else "/".join(fmt.format(value) for value in values)


def sweep_table(levels: Sequence[Summary]) -> Table:
    table = plain_table(
        "Concurrency sweep",
        "cores busy: CPU seconds per second over the level, of the gateway (gw), of the "
        "clients and the sink (load) and of the whole machine (all: those and other work)",
    )
    for header, _, _ in SWEEP_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    for row in sweep_rows(levels):
        table.add_row(*row)
    return table


def idle_rows(idle: Summary) -> list[list[str]]:
    """The gateway's memory before and with the idle sessions open, and per session."""
    return [
        [
            "before",
            formatted(idle["rss_mib_before"], "{:.1f} MiB"),
            formatted(idle["pss_mib_before"], "{:.1f} MiB"),
        ],
        [
            f"{idle['greeted']} idle sessions open",
            formatted(idle["rss_mib_held"], "{:.1f} MiB"),
            formatted(idle["pss_mib_held"], "{:.1f} MiB"),
        ],
        [
            "per idle session",
            formatted(idle["rss_kib_per_session"], "{:.1f} KiB"),
            formatted(idle["pss_kib_per_session"], "{:.1f} KiB"),
        ],
    ]


def idle_table(idle: Summary) -> Table:
    table = plain_table(f"{idle['asked']} idle sessions")
    table.add_column("gateway memory")
    table.add_column("RSS", justify="right")
    table.add_column("PSS", justify="right")
    for row in idle_rows(idle):
        table.add_row(*row)
    return table


def idle_notes(idle: Summary) -> list[str]:
    """How the sessions fared, and what the memory was summed over."""
    processes = idle["processes"]
    found = [
        f"{idle['greeted']} of {idle['asked']} got their greeting and a 250 to EHLO, "
        f"{idle['answered_after_hold']} answered a NOOP after {idle['held_seconds']:g} s idle; "
        f"memory summed over {processes} gateway process{'' if processes == 1 else 'es'}"
    ]
    found.extend(f"[red]{count} x {failure}[/red]" for failure, count in idle["failures"].items())
    return found


def busiest(levels: Sequence[Summary]) -> Summary | None:
    """The level with the highest accepted msg/s."""
    measured = [level for level in levels if level.get("accept_msg_per_s") is not None]
    return max(measured, key=lambda level: level["accept_msg_per_s"], default=None)


def sweep_notes(levels: Sequence[Summary]) -> list[str]:
    """What went wrong at each level, then what the sweep found."""
    found = [
        f"[red]{sessions(level['sessions'])}: {'; '.join(level['problems'])}[/red]"
        for level in levels
        if level["problems"]
    ]
    found.extend(
        f"[yellow]{sessions(level['sessions'])}: {count} x {escape(error)}[/yellow]"
        for level in levels
        for error, count in level["errors"].items()
    )
    return found + findings(levels)


def findings(levels: Sequence[Summary]) -> list[str]:
    """Where accepted msg/s peaked, against one session's, and p99 accept latency at 50
    sessions."""
    found = []
    peak, single = busiest(levels), _level(levels, 1)
    if peak is not None:
        text = (
            f"accepted msg/s peaked at {sessions(peak['sessions'])}: "
            f"{peak['accept_msg_per_s']:.1f}, the gateway keeping "
            f"{formatted(peak['cores_busy'], '{:.2f}')} cores busy (the load "
            f"{formatted(peak.get('load_cores_busy'), '{:.2f}')}, the whole machine "
            f"{formatted(peak.get('machine_cores_busy'), '{:.2f}')})"
        )
        if single is not None and single is not peak and single.get("accept_msg_per_s"):
            text += f", {peak['accept_msg_per_s'] / single['accept_msg_per_s']:.2f}x one session's"
        found.append(text)
    watched = _level(levels, WATCHED_SESSIONS)
    if watched is not None:
        found.append(
            f"p99 accept latency at {WATCHED_SESSIONS} sessions: "
            + formatted(watched.get("accept_p99_ms"), "{:.0f} ms")
        )
    return found


def sessions(count: int) -> str:
    return f"{count} session" if count == 1 else f"{count} sessions"


def _level(levels: Sequence[Summary], sessions: int) -> Summary | None:
    return next((level for level in levels if level["sessions"] == sessions), None)
