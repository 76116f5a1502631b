"""The pieces of `make bench-scaling` that count, shape and hold sessions (bench/)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.idle import IdleSessions, Memory, hold_idle_sessions
from bench.load import Arrivals, Figures, Route, build_jobs
from bench.procs import LOOPBACK, ensure_stopped, free_port, start, wait_listening
from bench.proctree import machine_busy_seconds, tree_rss_mib
from bench.report import RunReport
from bench.scaling import parse_args
from bench.scaling_report import findings, idle_rows, sweep_notes, sweep_rows
from bench.sweep import CpuTimes, Level
from bench.targets import GatewaySetup, gateway_config

ROUTES = [Route("seller@shop.example", f"b{n:015d}@relay.example.test") for n in range(2)]


def _figures(**changes: Any) -> Figures:
    values: dict[str, Any] = {
        "sent": 100,
        "accepted": 100,
        "errors": {},
        "delivered": 100,
        "lost": 0,
        "duplicates": 0,
        "unexpected": 0,
        "untagged": 0,
        "accept_seconds": 2.0,
        "end_to_end_seconds": 2.5,
        "accept_latencies": [0.01 * n for n in range(1, 101)],
        "end_to_end_latencies": [0.02 * n for n in range(1, 101)],
    }
    return Figures(**{**values, **changes})


def _level(sessions: int, cpu: float | None = 1.5, **changes: Any) -> Level:
    report = RunReport(f"{sessions}", _figures(**changes), None, cpu)
    return Level(sessions, report, 3.0, CpuTimes(cpu, 2.4, 5.4))


def test_a_level_counts_cores_busy_and_cpu_per_message() -> None:
    summary = _level(5).summary()
    assert summary["sessions"] == 5
    assert summary["accept_msg_per_s"] == 50.0 and summary["end_to_end_msg_per_s"] == 40.0
    assert (summary["accept_p50_ms"], summary["accept_p99_ms"]) == (500.0, 990.0)
    assert summary["cpu_ms_per_message"] == 15.0
    busy = ("cores_busy", "load_cores_busy", "machine_cores_busy")
    assert [summary[key] for key in busy] == [0.5, 0.3, 1.8]
    assert summary["problems"] == []
    assert "peak_rss_mib" not in summary and "exit_code" not in summary
    gone = _level(5, cpu=None)
    assert gone.cores_busy is None and gone.load_cores_busy is None


def test_cpu_spent_between_two_readings() -> None:
    spent = CpuTimes(3.0, 5.0, 9.0).since(CpuTimes(1.0, 2.0, 4.0))
    assert (spent.gateway, spent.benchmark, spent.machine, spent.load) == (2.0, 3.0, 5.0, 1.0)
    assert CpuTimes(None, 5.0, 9.0).since(CpuTimes(1.0, 2.0, 4.0)).gateway is None


def test_the_machine_has_been_busy_since_boot() -> None:
    busy = machine_busy_seconds()
    assert busy is not None and busy > 0


def test_a_level_names_what_went_wrong() -> None:
    level = _level(2, errors={"554 refused": 3}, lost=1, duplicates=2)
    assert level.problems() == ["3 refused or failed", "1 lost", "2 duplicated"]


def test_sweep_rows_put_p50_and_p99_in_one_cell() -> None:
    (row,) = sweep_rows([_level(20).summary()])
    assert row == ["20", "50.0", "40.0", "500/990", "1000/1980", "15.0", "0.50/0.30/1.80"]
    (missing,) = sweep_rows([{"sessions": 1}])
    assert missing[3] == "n/a"


def test_findings_state_the_peak_and_p99_at_fifty_sessions() -> None:
    levels = [
        _level(1, accept_seconds=10.0).summary(),
        _level(50, accept_seconds=2.5).summary(),
        _level(100, accept_seconds=4.0).summary(),
    ]
    assert findings(levels) == [
        "accepted msg/s peaked at 50 sessions: 40.0, the gateway keeping 0.50 cores busy "
        "(the load 0.30, the whole machine 1.80), 4.00x one session's",
        "p99 accept latency at 50 sessions: 990 ms",
    ]
    assert findings(levels[:1]) == [
        "accepted msg/s peaked at 1 session: 10.0, the gateway keeping 0.50 cores busy "
        "(the load 0.30, the whole machine 1.80)"
    ]


def test_problems_come_first_in_the_notes_with_markup_escaped() -> None:
    level = _level(5, errors={"550 [bad] address": 1}).summary()
    notes = sweep_notes([level])
    assert notes[0] == "[red]5 sessions: 1 refused or failed[/red]"
    assert notes[1] == "[yellow]5 sessions: 1 x 550 \\[bad] address[/yellow]"


def test_memory_per_idle_session_is_the_growth_over_the_greeted_ones() -> None:
    idle = IdleSessions(
        asked=1000,
        greeted=998,
        answered_after_hold=997,
        failures={"greeting or EHLO: 421 too many": 2, "NOOP after the hold: closed": 1},
        held_seconds=5.0,
        before=Memory(100.0, 60.0, 3),
        held=Memory(110.0, 79.5, 3),
    )
    assert idle.per_session_kib("rss_mib") == pytest.approx(10240 / 998)
    assert idle.per_session_kib("pss_mib") == pytest.approx(19.5 * 1024 / 998)
    assert idle.problems() == ["2 not greeted", "1 closed while idle"]
    rows = idle_rows(idle.summary())
    assert rows[1] == ["998 idle sessions open", "110.0 MiB", "79.5 MiB"]
    assert rows[2] == ["per idle session", "10.3 KiB", "20.0 KiB"]


def test_jobs_are_tagged_from_the_first_token_asked() -> None:
    jobs = build_jobs(3, ROUTES, first=200)
    assert [job.token for job in jobs] == [200, 201, 202]
    assert [job.route for job in jobs] == [ROUTES[0], ROUTES[1], ROUTES[0]]
    assert b"[bench:201]" in jobs[1].content


def test_arrivals_from_now_leave_out_earlier_lines(tmp_path: Path) -> None:
    path = tmp_path / "sink.arrivals"
    path.write_text("1 10.0\n2 11.0\n")
    arrivals = Arrivals.from_now(path)
    with path.open("a") as file:
        file.write("3 12.0\n2 13.0\n")
    arrivals.poll()
    assert arrivals.times == {3: 12.0, 2: 13.0}
    assert Arrivals.from_now(tmp_path / "none").times == {}


def test_levels_run_once_each_in_increasing_order() -> None:
    options = parse_args(["--levels", "20", "1", "5", "1", "--idle-sessions", "300"])
    assert options.levels == [1, 5, 20]
    assert options.most_sessions == 300
    assert parse_args(["--levels", "500", "--idle-sessions", "0"]).most_sessions == 500


def test_the_config_raises_sessions_per_client_and_can_check_senders() -> None:
    setup = GatewaySetup(100, None, "dsn", most_sessions=1010, sender_auth="aligned")
    text = gateway_config("sqlite:///x.db", 2525, 2526, setup, dns_port=5353)
    assert "max_sessions_per_client = 1010 " in text
    assert 'sender_auth = "aligned"' in text
    assert text.endswith('[dns]\nnameservers = ["127.0.0.1"]\nport = 5353\n')
    plain = gateway_config("sqlite:///x.db", 2525, 2526, GatewaySetup(100, None, "dsn"))
    assert 'sender_auth = "none"' in plain and "[dns]" not in plain


def test_the_resident_set_of_a_live_tree_is_known() -> None:
    rss = tree_rss_mib(os.getpid())
    assert rss is not None and rss > 1


async def test_idle_sessions_are_greeted_held_and_ended(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "bench.sink", "--port", str(port)]
    sink = await start("sink", [*argv, "--arrivals", str(tmp_path / "a")], tmp_path / "sink.log")
    try:
        await wait_listening(sink, port)
        idle = await hold_idle_sessions(port, sink.pid, count=5, hold=0.1)
    finally:
        await ensure_stopped(sink)
    assert (idle.greeted, idle.answered_after_hold, idle.failures) == (5, 5, {})
    assert idle.before.rss_mib is not None and idle.held.pss_mib is not None
    assert idle.held.processes == 1


async def test_sessions_refused_at_the_greeting_are_counted() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"421 4.7.0 Too many sessions\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        idle = await hold_idle_sessions(port, os.getpid(), count=3, hold=0)
    assert idle.greeted == 0
    assert idle.problems() == ["3 not greeted"]
    assert sum(idle.failures.values()) == 3
    assert all(failure.startswith("greeting or EHLO: 421") for failure in idle.failures)
