"""The pieces of `make bench-postfix` that count and measure (bench/)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.comparison import summarize
from bench.load import Route, template
from bench.measurement import Measurement
from bench.message_file import sized_template, write_message_file
from bench.procs import ensure_stopped, free_port, wait_listening
from bench.proctree import tree_cpu_seconds, tree_pids
from bench.smtptools import (
    SMTP_SINK,
    SMTP_SOURCE,
    SinkCounter,
    messages_counted,
    read_source_log,
    run_source,
    source_argv,
    start_smtp_sink,
)
from bench.targets import GatewaySetup, gateway_config
from tests.support.postfix import require_postfix

ROUTE = Route("seller@shop.example", "b000000000000000@relay.example.test")


def test_the_sink_counter_is_the_latest_mesg_value() -> None:
    output = b"sess=0 quit=0 mesg=1\rsess=0 quit=0 mesg=2\rsess=1 quit=1 mesg=2\r"
    assert messages_counted(output) == 2
    assert messages_counted(b"") is None


async def test_counter_updates_split_across_reads_are_counted_once_whole() -> None:
    stream = asyncio.StreamReader()
    counter = SinkCounter()
    follow = asyncio.create_task(counter.follow(stream))
    stream.feed_data(b"sess=0 quit=0 mesg=1\rsess=0 quit=0 me")
    await asyncio.sleep(0)
    assert counter.count == 1
    stream.feed_data(b"sg=3\r")
    stream.feed_eof()
    await asyncio.wait_for(counter.wait_for(3), 1)
    await follow
    assert counter.count == 3 and counter.last_arrival is not None


def test_the_source_log_gives_its_last_counter_and_its_other_lines(tmp_path: Path) -> None:
    log = tmp_path / "source.log"
    log.write_bytes(b"1\r2\r3\rsmtp-source: fatal: 421 too many sessions\n")
    assert read_source_log(log) == (3, ["smtp-source: fatal: 421 too many sessions"])


def test_a_sized_message_comes_close_to_the_size_asked() -> None:
    assert sized_template(ROUTE, None) == template(ROUTE)
    for size in (6000, 20000):
        assert abs(len(sized_template(ROUTE, size)) - size) < 400
    assert len(sized_template(ROUTE, 100)) < len(template(ROUTE))  # no care notes at all


def test_the_message_file_has_bare_line_feeds(tmp_path: Path) -> None:
    path = tmp_path / "message.eml"
    size = write_message_file(path, ROUTE, None)
    content = path.read_bytes()
    assert b"\r" not in content
    assert size == len(content) + content.count(b"\n")  # as sent: CRLF
    assert b"To: b000000000000000@relay.example.test\n" in content


def test_tree_cpu_includes_children_already_reaped() -> None:
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    before = tree_cpu_seconds(os.getpid())
    subprocess.run([sys.executable, "-c", busy], check=True)
    after = tree_cpu_seconds(os.getpid())
    assert before is not None and after is not None
    assert after - before >= 0.25


def test_a_gone_process_has_no_tree() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert tree_pids(child.pid) == []
    assert tree_cpu_seconds(child.pid) is None


def test_the_server_section_is_written_only_when_asked_for() -> None:
    plain = gateway_config("sqlite:///x.db", 2525, 2526, GatewaySetup(100, None, "dsn"))
    assert "[server]" not in plain
    several = gateway_config("sqlite:///x.db", 2525, 2526, GatewaySetup(100, 3, "dsn"))
    assert several.endswith("[server]\nprocesses = 3\n")


def _measurement(target: str, seconds: float, cpu: float) -> Measurement:
    return Measurement(
        repetition=1,
        mode="reuse",
        target=target,
        messages=100,
        message_bytes=5000,
        completed=100,
        delivered=100,
        seconds=seconds,
        cpu_seconds=cpu,
        peak_rss_mib=10.0,
        processes_at_peak=1,
        pss_mib=5.0,
        database_cpu_seconds=None,
        source_exit=0,
        exit_code=0,
    )


def test_medians_over_repetitions_and_ratios_to_postfix() -> None:
    runs = [
        _measurement("postfix", 0.1, 0.2),
        _measurement("gateway-sqlite", 2.0, 4.0),
        _measurement("postfix", 0.2, 0.3),
        _measurement("gateway-sqlite", 4.0, 5.0),
        _measurement("postfix", 0.25, 0.4),
        _measurement("gateway-sqlite", 5.0, 6.0),
    ]
    postfix, gateway = summarize(runs)
    assert (postfix.rate, postfix.cpu_ms) == (500.0, 3.0)
    assert (gateway.rate, gateway.cpu_ms) == (25.0, 50.0)
    document = gateway.as_dict(postfix)
    assert document["msg_per_s_vs_postfix"] == 0.05
    assert document["cpu_ms_per_message_vs_postfix"] == pytest.approx(16.67)


async def test_smtp_sink_counts_what_smtp_source_sends(tmp_path: Path) -> None:
    require_postfix()  # smtp-sink -u needs root too; in CI a missing one fails
    assert Path(SMTP_SOURCE).is_file() and Path(SMTP_SINK).is_file(), "Postfix's tools"
    port = free_port()
    sink, counter = await start_smtp_sink("smtp-sink", port, tmp_path / "sink.log")
    try:
        await wait_listening(sink, port)
        message = tmp_path / "message.eml"
        write_message_file(message, ROUTE, None)
        argv = source_argv(
            port,
            message,
            messages=30,
            sessions=3,
            reuse=False,
            sender=ROUTE.mail_from,
            recipient=ROUTE.rcpt,
        )
        run = await run_source("smtp-source", argv, tmp_path / "source.log")
        await asyncio.wait_for(counter.wait_for(30), 10)
    finally:
        await ensure_stopped(sink)
    assert (run.completed, run.exit_code, run.errors) == (30, 0, [])
    assert counter.count == 30
