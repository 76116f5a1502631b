"""The benchmark's results: a table for people, a JSON file for later comparison."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from bench.load import Figures, percentile
from bench.procs import ROOT

RESULTS_DIR = ROOT / "bench" / "results"
_PACKAGES = ("aiosmtpd", "aiosmtplib", "SQLAlchemy", "psycopg")


@dataclass
class RunReport:
    """One run: the load's figures and what was seen of the server process."""

    name: str
    figures: Figures
    peak_rss_mib: float | None
    cpu_seconds: float | None  # of the server while the load ran
    exit_code: int | None = None  # of the measured server after SIGTERM; None: killed
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_ms_per_message(self) -> float | None:
        sent = self.figures.sent
        return None if self.cpu_seconds is None or not sent else self.cpu_seconds * 1000 / sent

    def summary(self) -> dict[str, Any]:
        f = self.figures
        return {
            "sent": f.sent,
            "accepted": f.accepted,
            "errors": f.errors,
            "delivered": f.delivered,
            "lost": f.lost,
            "duplicates": f.duplicates,
            "unexpected": f.unexpected,
            "untagged": f.untagged,
            "accept_seconds": rounded(f.accept_seconds, 3),
            "end_to_end_seconds": rounded(f.end_to_end_seconds, 3),
            "accept_msg_per_s": rounded(f.accept_rate, 2),
            "end_to_end_msg_per_s": rounded(f.end_to_end_rate, 2),
            "accept_p50_ms": _ms(percentile(f.accept_latencies, 50)),
            "accept_p99_ms": _ms(percentile(f.accept_latencies, 99)),
            "end_to_end_p50_ms": _ms(percentile(f.end_to_end_latencies, 50)),
            "end_to_end_p99_ms": _ms(percentile(f.end_to_end_latencies, 99)),
            "peak_rss_mib": rounded(self.peak_rss_mib, 1),
            "cpu_ms_per_message": rounded(
                None
                if self.cpu_seconds is None or not f.sent
                else self.cpu_seconds * 1000 / f.sent,
                2,
            ),
            "exit_code": self.exit_code,
            **self.details,
        }


# (label, summary key, format) of the rows whose gateway/baseline ratio is shown.
_COMPARED: tuple[tuple[str, str, str], ...] = (
    ("SMTP-in msg/s (250s)", "accept_msg_per_s", "{:.1f}"),
    ("end-to-end msg/s (at sink)", "end_to_end_msg_per_s", "{:.1f}"),
    ("accept latency p50 ms", "accept_p50_ms", "{:.1f}"),
    ("accept latency p99 ms", "accept_p99_ms", "{:.1f}"),
    ("end-to-end latency p50 ms", "end_to_end_p50_ms", "{:.1f}"),
    ("end-to-end latency p99 ms", "end_to_end_p99_ms", "{:.1f}"),
    ("peak RSS MiB (server)", "peak_rss_mib", "{:.1f}"),
    ("server CPU ms per message", "cpu_ms_per_message", "{:.2f}"),
)


def ratios(baseline: dict[str, Any], gateway: dict[str, Any]) -> dict[str, float | None]:
    """gateway / baseline for every compared figure."""
    result: dict[str, float | None] = {}
    for _, key, _ in _COMPARED:
        base, gate = baseline.get(key), gateway.get(key)
        result[key] = rounded(gate / base, 3) if base and gate is not None else None
    return result


def plain_table(title: str, caption: str | None = None) -> Table:
    """A table of figures as the benchmarks print them: title and caption on the left, a
    rule under the header, no outer border, two spaces between columns (fits 80 columns
    more easily)."""
    return Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


def render(baseline: dict[str, Any], gateway: dict[str, Any], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("baseline (sink)", justify="right")
    table.add_column("gateway", justify="right")
    table.add_column("gateway / baseline", justify="right")
    for label, key in (("messages sent", "sent"), ("accepted (250)", "accepted")):
        table.add_row(label, str(baseline[key]), str(gateway[key]), "")
    table.add_row("lost / duplicated", _pair(baseline), _pair(gateway), "", end_section=True)
    quotients = ratios(baseline, gateway)
    for label, key, fmt in _COMPARED:
        table.add_row(
            label,
            formatted(baseline.get(key), fmt),
            formatted(gateway.get(key), fmt),
            formatted(quotients[key], "{:.2f}x"),
        )
    table.add_row(
        "exit code after SIGTERM",
        formatted(baseline["exit_code"], "{}"),
        formatted(gateway["exit_code"], "{}"),
        "",
        end_section=True,
    )
    return table


def print_run(
    console: Console, baseline: dict[str, Any], gateway: dict[str, Any], title: str
) -> None:
    console.print(render(baseline, gateway, title))
    for name, run in (("baseline", baseline), ("gateway", gateway)):
        for error, count in run["errors"].items():
            console.print(f"[yellow]{name}: {count} x {error}[/yellow]", highlight=False)
    print_problems(console, gateway)


def print_problems(console: Console, gateway: dict[str, Any]) -> None:
    """The gateway log's warning and error lines, if it had any."""
    problems = gateway.get("log_problem_count", 0)
    if problems:
        console.print(f"[yellow]gateway log: {problems} warning/error line(s), first ones:[/]")
        for line in gateway.get("log_problems", []):
            console.print(line, markup=False, highlight=False, soft_wrap=True)


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _proc_value("/proc/cpuinfo", "model name"),
        "memory_total": _proc_value("/proc/meminfo", "MemTotal"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
    }


def save_results(
    benchmark: str,
    started: datetime,
    seconds: float,
    options: dict[str, Any],
    facts: dict[str, Any],
    **figures: Any,
) -> Path:
    """Write bench/results/<benchmark>-<UTC time>.json: when the run started and how long it
    took, its options (without the PostgreSQL DSN, which may hold a password), the machine's
    facts and the run's `figures`."""
    settings = {key: value for key, value in options.items() if key != "postgres_dsn"}
    document = {
        "benchmark": benchmark,
        "started_at": started.isoformat(),
        "duration_s": round(seconds, 1),
        "options": settings,
        "machine": facts,
        **figures,
    }
    return write_json(document, started, benchmark)


def write_json(document: dict[str, Any], started: datetime, benchmark: str = "e2e") -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{benchmark}-{started.astimezone(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def formatted(value: Any, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def _pair(run: dict[str, Any]) -> str:
    return f"{run['lost']} / {run['duplicates']}"


def _proc_value(path: str, key: str) -> str | None:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(key)), None)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
