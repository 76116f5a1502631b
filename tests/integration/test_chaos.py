"""Chaos: concurrent SMTP sessions send while `serve` is killed with SIGKILL at random moments
(at least ten times) and started again. At the end every message that got a 250 was
delivered exactly once into the maildir (which recognises its own files), or at least once
and at most twice through a smarthost (a 250 from it that a killed process never recorded
is sent again), none that was refused was delivered, and one whose session was cut before
any reply was delivered at most once more (the gateway may have committed it and died
before it could answer: SMTP's own duplicate window, which the sender closes by sending
again). Loopback only, bounded in count and time; BSM_CHAOS_MESSAGES sends more."""

from __future__ import annotations

import itertools
import os
import random
import secrets
import signal
import smtplib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.test_process import Deployment
from tests.support.mail import read_bytes, text_message, wire_bytes
from tests.support.process import Serve
from tests.support.sink import Sink, smtp_sink

MESSAGES = int(os.environ.get("BSM_CHAOS_MESSAGES", "2000"))
SESSIONS = 8
KILLS = 12
SETTLE = 1.5  # seconds a restarted process runs at least before it is killed again
TIME_LIMIT = 600.0  # seconds for the whole run: past it the test fails, it does not hang


@dataclass
class Ledger:
    """What the clients saw, per attempt (each attempt has a subject of its own)."""

    accepted: set[str] = field(default_factory=set)  # got 250
    refused: set[str] = field(default_factory=set)  # got a 4xx/5xx reply
    cut: set[str] = field(default_factory=set)  # the session ended before any reply
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, kind: set[str], subject: str) -> None:
        with self.lock:
            kind.add(subject)


def _attempt(port: int, sender: str, rcpt: str, subject: str, ledger: Ledger) -> bool:
    message = text_message(sender=sender, to=rcpt, subject=subject)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            refused = client.sendmail(sender, [rcpt], wire_bytes(message))
    except smtplib.SMTPResponseException:
        ledger.note(ledger.refused, subject)  # a reply that is not 250 (451 while restarting)
        return False
    except (OSError, smtplib.SMTPException):
        ledger.note(ledger.cut, subject)  # refused connection, or cut off mid-session
        return False
    assert refused == {}
    ledger.note(ledger.accepted, subject)
    return True


@pytest.mark.parametrize("transport", ["maildir", "smarthost"])
def test_kill_9_under_load_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, db_url: str, transport: str
) -> None:
    with smtp_sink() as sink:
        deployment = Deployment(tmp_path, db_url)
        if transport == "smarthost":
            text = deployment.config.read_text()
            maildir = f'transport = "maildir:{deployment.maildir}"'
            assert maildir in text
            smarthost = f'transport = "smtp://127.0.0.1:{sink.port}"'
            deployment.config.write_text(text.replace(maildir, smarthost))
        _chaos(tmp_path, db_url, deployment, transport, sink)


def _chaos(tmp_path: Path, db_url: str, deployment: Deployment, transport: str, sink: Sink) -> None:
    p = deployment.parties
    run = secrets.token_hex(3)
    ledger = Ledger()
    started = time.monotonic()
    next_message = itertools.count()
    taking = threading.Lock()
    done = threading.Event()
    killed_enough = threading.Event()
    sent: list[int] = []
    rng = random.Random(run)

    def sender() -> None:
        while True:
            with taking:
                n = next(next_message)
                # At least MESSAGES, and on until every kill has landed under load.
                if n >= MESSAGES and killed_enough.is_set():
                    return
                sent.append(n)
            for attempt in range(1000):
                if time.monotonic() - started > TIME_LIMIT:
                    return
                subject = f"chaos {run} m{n} a{attempt}"
                if _attempt(deployment.port, p.buyer_address, p.seller_alias, subject, ledger):
                    break
                time.sleep(rng.uniform(0.02, 0.2))

    # Kill at random moments: each process lives SETTLE seconds and up to one more. A kill
    # right after a restart would also catch the resends of the one before, and a
    # smarthost could then get a third copy (each kill inside that window adds one).
    serve_holder: list[Serve] = []
    kills = 0

    def killer() -> None:
        nonlocal kills
        while kills < KILLS and not done.is_set():
            time.sleep(SETTLE + rng.uniform(0, 1.0))
            serve = serve_holder[-1]
            serve.signal(signal.SIGKILL)
            serve.wait(30)
            kills += 1
            replacement = Serve(deployment.config, deployment.port, tmp_path / f"serve-{kills}.log")
            replacement.wait_ready(60)
            serve_holder.append(replacement)
        killed_enough.set()

    first = Serve(deployment.config, deployment.port, tmp_path / "serve-0.log")
    serve_holder.append(first)
    try:
        first.wait_ready()
        threads = [threading.Thread(target=sender) for _ in range(SESSIONS)]
        chaos = threading.Thread(target=killer)
        chaos.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        chaos.join()
        assert time.monotonic() - started < TIME_LIMIT, "the run took too long"
        # Whatever the killed processes had claimed is taken over by the one running.
        _wait_nothing_queued(deployment, timeout=120)
        assert serve_holder[-1].stop() == 0
    finally:
        for serve in serve_holder:
            serve.close()

    if transport == "maildir":
        delivered = Counter(str(m["Subject"]) for m in deployment.delivered())
    else:
        delivered = Counter(str(read_bytes(r.content)["Subject"]) for r in sink.received)
    ours = {s: c for s, c in delivered.items() if s.startswith(f"chaos {run} ")}
    twice = {s: c for s, c in ours.items() if c > 1}
    missing = sorted(ledger.accepted - set(ours))
    refused_but_delivered = sorted(ledger.refused & set(ours))
    cut_but_delivered = sorted(ledger.cut & set(ours))
    messages_with_250 = {s.rsplit(" ", 1)[0] for s in ledger.accepted}
    print(
        f"\nchaos ({'postgresql' if 'postgresql' in db_url else 'sqlite'}, {transport}): "
        f"{len(sent)} messages "
        f"over {SESSIONS} sessions, {kills} kills -9; attempts: {len(ledger.accepted)} got 250, "
        f"{len(ledger.refused)} refused (451 while the database or the process restarted), "
        f"{len(ledger.cut)} cut off; delivered: {sum(ours.values())}, of them "
        f"{len(cut_but_delivered)} whose session was cut after the commit, "
        f"{len(twice)} sent twice; "
        f"{time.monotonic() - started:.0f} s"
    )
    assert kills >= 10
    assert len(sent) >= MESSAGES and len(messages_with_250) == len(sent)
    assert not missing, f"250 but never delivered: {missing[:5]}"
    if transport == "maildir":  # the maildir knows its own files: never a second copy
        assert not twice, f"delivered twice: {list(twice)[:5]}"
    else:  # a smarthost's 250 a killed process never recorded: sent once more at most
        assert all(count <= 2 for count in twice.values()), twice
    assert not refused_but_delivered, f"refused but delivered: {refused_but_delivered[:5]}"
    assert set(ours) <= ledger.accepted | ledger.cut


def _wait_nothing_queued(deployment: Deployment, timeout: float) -> None:
    """Until every queue row is recorded delivered: no copy can come after that."""
    deadline = time.monotonic() + timeout
    while set(states := deployment.queue_states()) != {"delivered"}:
        if time.monotonic() > deadline:
            raise AssertionError(f"queue after {timeout}s: {dict(states)}")
        time.sleep(0.2)
