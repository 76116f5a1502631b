"""`bsm-gateway serve` with several worker processes ([server] processes), on SQLite and on
PostgreSQL: every process serves the port, a message is delivered once whichever process
took it, a worker that dies is replaced without losing what it acknowledged, workers die
with their parent, a registry change reaches every process within a second, and the daily
quota stays exact across them."""

from __future__ import annotations

import os
import signal
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import Parties, wait_for
from tests.support.mail import read, text_message, wire_bytes
from tests.support.process import (
    Serve,
    clean_env,
    cli_json,
    json_log_lines,
    process_config,
    register_with_cli,
    reserve_port,
    run_cli,
)

PROCESSES = 2
CONNECTIONS = 20  # enough that the kernel sends some to every process


class Deployment:
    def __init__(self, folder: Path, database_url: str, **env: str) -> None:
        self.folder = folder
        self.maildir = folder / "outbox"
        self.port = reserve_port()
        self.config = process_config(folder, database_url, f"maildir:{self.maildir}", self.port)
        self.parties: Parties = register_with_cli(self.config)
        self.env = clean_env(BSM_SERVER__PROCESSES=str(PROCESSES), **env)

    @contextmanager
    def serve(self) -> Iterator[Serve]:
        process = Serve(self.config, self.port, self.folder / "serve.log", env=self.env)
        try:
            process.wait_ready()
            yield process
        finally:
            process.close()

    def message(self, subject: str) -> bytes:
        p = self.parties
        return wire_bytes(text_message(sender=p.seller_mailbox, to=p.buyer_alias, subject=subject))

    def send(self, subject: str) -> int:
        """One message on a connection of its own: the DATA reply code (0: no reply)."""
        p = self.parties
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
                client.ehlo()
                if client.mail(p.seller_mailbox)[0] != 250:
                    return 0
                code, _ = client.rcpt(p.buyer_alias)
                if code != 250:
                    return code
                return client.data(self.message(subject))[0]
        except (smtplib.SMTPException, OSError):
            return 0

    def send_many(self, subjects: list[str]) -> dict[str, int]:
        with ThreadPoolExecutor(max_workers=CONNECTIONS) as pool:
            return dict(zip(subjects, pool.map(self.send, subjects), strict=True))

    def delivered_subjects(self) -> Counter[str]:
        folders = [self.maildir / "new", self.maildir / "cur"]
        paths = [p for f in folders if f.is_dir() for p in f.iterdir()]
        return Counter(str(read(p)["Subject"]) for p in paths)

    def wait_delivered(self, subjects: set[str], timeout: float = 30) -> Counter[str]:
        deadline = time.monotonic() + timeout
        while True:
            delivered = self.delivered_subjects()
            if subjects <= set(delivered) or time.monotonic() > deadline:
                return delivered
            time.sleep(0.1)


def workers_of(serve: Serve) -> list[int]:
    """The worker pids serve logged when it started them (it listens a moment before)."""

    def started() -> list[dict[str, Any]]:
        records = json_log_lines(serve.stderr())
        return [r for r in records if r.get("event") == "started" and "processes" in r]

    [record] = wait_for(started, timeout=10)
    return list(record["workers"])


def took_messages(serve: Serve) -> set[int]:
    """The workers that logged taking a message in."""
    return {r["worker"] for r in json_log_lines(serve.stderr()) if r.get("event") == "received"}


def test_every_process_serves_and_each_message_arrives_once(tmp_path: Path, db_url: str) -> None:
    deployment = Deployment(tmp_path, db_url)
    subjects = [f"spread {n}" for n in range(3 * CONNECTIONS)]
    with deployment.serve() as serve:
        assert len(workers_of(serve)) == PROCESSES
        codes = deployment.send_many(subjects)
        delivered = deployment.wait_delivered(set(subjects))
        assert serve.stop() == 0
        assert took_messages(serve) == set(range(PROCESSES))
    assert Counter(codes.values()) == Counter({250: len(subjects)})
    assert delivered == Counter(dict.fromkeys(subjects, 1))


def test_a_worker_killed_under_load_is_replaced_and_nothing_it_acknowledged_is_lost(
    tmp_path: Path, db_url: str
) -> None:
    deployment = Deployment(tmp_path, db_url)
    codes: dict[str, int] = {}
    sending = threading.Event()
    sending.set()

    def load() -> None:
        n = 0
        while sending.is_set():
            batch = [f"under load {n + i}" for i in range(CONNECTIONS)]
            n += CONNECTIONS
            codes.update(deployment.send_many(batch))

    with deployment.serve() as serve:
        victim = workers_of(serve)[1]
        sender = threading.Thread(target=load)
        sender.start()
        try:
            time.sleep(1.0)
            os.kill(victim, signal.SIGKILL)
            time.sleep(3.0)  # replaced after [server] restart_delay, still under load
        finally:
            sending.clear()
            sender.join(60)
        acknowledged = {s for s, code in codes.items() if code == 250}
        # Deliveries the killed worker held come back when their lease runs out.
        delivered = deployment.wait_delivered(acknowledged, timeout=40)
        records = json_log_lines(serve.stderr())
        assert serve.stop() == 0

    [died] = [r for r in records if r.get("event") == "worker_died"]
    assert died["pid"] == victim and died["worker"] == 1
    restarted = [r for r in records if r.get("event") == "started" and r.get("worker") == 1]
    assert len(restarted) == 2, "the worker was started again"
    assert acknowledged and acknowledged <= set(delivered), "a 250 was lost"
    assert set(delivered.values()) == {1}, "a message was delivered twice"
    # What was not acknowledged was either never stored or delivered once: never twice.
    assert set(delivered) <= set(codes)


def test_workers_die_with_their_parent(tmp_path: Path, db_url: str) -> None:
    deployment = Deployment(tmp_path, db_url)
    with deployment.serve() as serve:
        workers = workers_of(serve)
        os.kill(serve.pid, signal.SIGKILL)  # the parent only
        serve.process.wait(10)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_registry_change_reaches_every_process_within_a_second(
    tmp_path: Path, db_url: str
) -> None:
    """The seller is suspended and reinstated by the CLI, a process of its own; a second
    later every worker judges by the new standing."""
    deployment = Deployment(tmp_path, db_url)
    seller = str(deployment.parties.seller_id)
    with deployment.serve() as serve:
        assert set(deployment.send_many([f"before {n}" for n in range(CONNECTIONS)]).values()) == {
            250
        }
        assert cli_json(deployment.config, "seller", "suspend", seller)["changed"] is True
        time.sleep(1.0)
        suspended = deployment.send_many([f"suspended {n}" for n in range(CONNECTIONS)])
        assert run_cli(deployment.config, "seller", "reinstate", seller).returncode == 0
        time.sleep(1.0)
        reinstated = deployment.send_many([f"reinstated {n}" for n in range(CONNECTIONS)])
        assert took_messages(serve) == set(range(PROCESSES))
        assert serve.stop() == 0
    assert set(suspended.values()) == {550}
    assert set(reinstated.values()) == {250}


QUOTA = 9


def test_the_daily_quota_stays_exact_across_processes(tmp_path: Path, db_url: str) -> None:
    deployment = Deployment(
        tmp_path, db_url, BSM_RULES__QUOTA_BASE=str(QUOTA), BSM_RULES__QUOTA_PER_ORDER="0"
    )
    subjects = [f"quota {n}" for n in range(4 * QUOTA)]
    with deployment.serve() as serve:
        codes = deployment.send_many(subjects)
        assert took_messages(serve) == set(range(PROCESSES))
        assert serve.stop() == 0
    assert Counter(codes.values()) == Counter({250: QUOTA, 452: len(subjects) - QUOTA})


@pytest.fixture(autouse=True)
def _no_stray_processes() -> Iterator[None]:
    yield
    # serving() and Serve.close() kill the whole process group; nothing may be left over.
    assert not [p for p in Path("/proc").iterdir() if _is_serve_of_this_test(p)]


def _is_serve_of_this_test(proc: Path) -> bool:
    if not proc.name.isdigit():
        return False
    try:
        command = (proc / "cmdline").read_bytes()
        parent = int((proc / "stat").read_text().split()[3])
    except (OSError, ValueError, IndexError):
        return False
    return b"bsm-gateway" in command and b"serve" in command and parent == os.getpid()
