"""`bsm-gateway serve` as operators run it: a real process on a real port, real signals.

A 250 means the message is stored: a process killed right after answering it (kill -9) and
restarted delivers it exactly once; SIGTERM lets the process finish and exit 0 within
shutdown_grace, without ever answering 250 for something it did not store; and its JSON
log lines name ids, never a real address.
"""

from __future__ import annotations

import secrets
import select
import signal
import smtplib
import time
from collections import Counter
from contextlib import AbstractContextManager
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

from gateway.storage.database import Database
from gateway.storage.schema import Message, Outbound
from tests.support.gateway import CLAIM_LEASE, Parties, wait_for
from tests.support.mail import read, read_bytes, send, text_message, wire_bytes
from tests.support.process import (
    Serve,
    addresses_in_log,
    json_log_lines,
    process_config,
    register_with_cli,
    reserve_port,
    serving,
)
from tests.support.sink import SILENCE, smtp_sink

SHUTDOWN_GRACE = 5.0  # tests.support.gateway.TEST_CONFIG


class Deployment:
    """One config (database, maildir, port) that serve processes are started on in turn."""

    def __init__(self, folder: Path, database_url: str) -> None:
        self.folder = folder
        self.database_url = database_url
        self.maildir = folder / "outbox"
        self.port = reserve_port()
        self.config = process_config(folder, database_url, f"maildir:{self.maildir}", self.port)
        self.parties: Parties = register_with_cli(self.config)

    def serve(self) -> AbstractContextManager[Serve]:
        return serving(self.config, self.port, self.folder)

    def message(self, subject: str) -> bytes:
        p = self.parties
        return wire_bytes(text_message(sender=p.seller_mailbox, to=p.buyer_alias, subject=subject))

    def delivered(self) -> list[EmailMessage]:
        folders = [self.maildir / "new", self.maildir / "cur"]
        return [read(p) for f in folders if f.is_dir() for p in sorted(f.iterdir())]

    def subjects(self) -> Counter[str]:
        return Counter(str(m["Subject"]) for m in self.delivered())

    def wait_delivered(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.delivered()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(self.delivered())} of {count} messages delivered after {timeout}s"
                )
            time.sleep(0.1)

    def wait_all_recorded(self, count: int, timeout: float) -> None:
        """Until the queue holds `count` rows, all recorded delivered."""
        deadline = time.monotonic() + timeout
        while self.queue_states() != Counter(delivered=count):
            if time.monotonic() > deadline:
                raise AssertionError(f"queue after {timeout}s: {dict(self.queue_states())}")
            time.sleep(0.1)

    def queue_states(self) -> Counter[str]:
        return _queue_states(self.database_url)

    def archived_count(self) -> int:
        database = Database.from_url(self.database_url)
        try:
            with database.transaction() as session:
                return session.scalar(sql_select(func.count()).select_from(Message)) or 0
        finally:
            database.dispose()


@pytest.fixture
def deployment(tmp_path: Path, db_url: str) -> Deployment:
    return Deployment(tmp_path, db_url)


def _send_and_hold(port: int, mail_from: str, rcpt: str, data: bytes) -> smtplib.SMTP:
    """sendmail, leaving the session open: the caller acts the instant the 250 arrives."""
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        assert client.sendmail(mail_from, [rcpt], data) == {}
    except BaseException:
        client.close()
        raise
    return client


def _assert_delivered_once_after_restart(deployment: Deployment, subject: str) -> None:
    """Delivered by the stopped process or by the next one: exactly once either way."""
    with deployment.serve() as serve:
        deployment.wait_delivered(1, timeout=CLAIM_LEASE + 20)
        # A row left claimed by the stopped process comes back after its lease: only once
        # every row is recorded delivered can no second copy come.
        deployment.wait_all_recorded(1, timeout=CLAIM_LEASE + 20)
        counts = deployment.subjects()
        assert serve.stop() == 0
    assert counts == Counter({subject: 1})
    assert deployment.queue_states() == Counter(delivered=1)


# -- a. kill -9 right after the 250 ------------------------------------------------------

# How long after the 250 the process dies: before the worker claims the row, while it
# writes the Maildir file, after it has written it but (maybe) before recording it, later.
KILL_DELAYS = (0.0, 0.002, 0.01, 0.03, 0.2)


def test_kill_9_after_250_delivers_each_message_exactly_once(deployment: Deployment) -> None:
    p = deployment.parties
    run = secrets.token_hex(4)
    subjects = [f"kill-9 test {run} #{n}" for n in range(len(KILL_DELAYS))]
    delivered_at_kill = []
    for subject, delay in zip(subjects, KILL_DELAYS, strict=True):
        with deployment.serve() as serve:
            client = _send_and_hold(
                deployment.port, p.seller_mailbox, p.buyer_alias, deployment.message(subject)
            )
            if delay:
                time.sleep(delay)
            serve.signal(signal.SIGKILL)
            assert serve.wait(10) == -signal.SIGKILL
            client.close()
            delivered_at_kill.append(sum(deployment.subjects().values()))
    print(f"messages in the maildir as each kill landed: {delivered_at_kill}")

    with deployment.serve() as serve:
        # Rows claimed by a killed process come back once their lease runs out.
        deployment.wait_delivered(len(subjects), timeout=CLAIM_LEASE + 20)
        # Until every row is recorded delivered, a claimed one may still be sent again.
        deployment.wait_all_recorded(len(subjects), timeout=CLAIM_LEASE + 20)
        counts = deployment.subjects()
        assert serve.stop() == 0

    assert {s: counts[s] for s in subjects} == dict.fromkeys(subjects, 1), (
        f"copies per message {dict(counts)}; delivered when each kill landed: {delivered_at_kill}"
    )
    assert sum(counts.values()) == len(subjects)
    assert deployment.queue_states() == Counter(delivered=len(subjects))


def test_a_restarted_process_takes_back_what_it_had_claimed_at_once(
    tmp_path: Path, db_url: str
) -> None:
    """Killed while its deliveries hang at the smarthost, the process leaves them claimed
    for a lease of 600 s; the next process on this host sees the pid gone and sends them
    within seconds."""
    count = 3
    with smtp_sink([SILENCE] * count) as sink:
        port = reserve_port()
        config = process_config(tmp_path, db_url, f"smtp://127.0.0.1:{sink.port}", port)
        text = config.read_text()
        config.write_text(text.replace(f"claim_lease = {CLAIM_LEASE}\n", "claim_lease = 600\n"))
        parties = register_with_cli(config)
        subjects = [f"claimed when killed #{n}" for n in range(count)]
        with serving(config, port, tmp_path) as serve:
            for subject in subjects:
                message = text_message(
                    sender=parties.seller_mailbox, to=parties.buyer_alias, subject=subject
                )
                send(port, parties.seller_mailbox, [parties.buyer_alias], message)
            wait_for(lambda: sink.attempts >= count, timeout=10)  # each one hangs there
            serve.signal(signal.SIGKILL)
            assert serve.wait(10) == -signal.SIGKILL
        restarted = time.monotonic()
        with serving(config, port, tmp_path) as serve:
            wait_for(lambda: len(sink.received) >= count, timeout=60)
            waited = time.monotonic() - restarted
            assert serve.stop() == 0
            assert "claims_taken_over" in serve.stderr()
        got = Counter(str(read_bytes(r.content)["Subject"]) for r in sink.received)
    assert got == Counter(subjects)
    print(f"{count} deliveries claimed by the killed process sent {waited:.1f}s after restart")


def test_killed_after_the_smarthosts_250_it_sends_again_once_with_the_same_message_id(
    tmp_path: Path, db_url: str
) -> None:
    """The smarthost has the message; the process dies before it hears the 250, so it
    never records the delivery. The next process sends it again, once, byte for byte the
    same message (its Message-ID too; only the DKIM signature's time differs), which the
    next hop can recognise as a duplicate: SMTP's at-least-once (RFC 5321 6.1)."""
    holder: list[Serve] = []
    with smtp_sink() as sink:
        sink.on_data = lambda got: holder[0].signal(signal.SIGKILL) if len(holder) == 1 else None
        port = reserve_port()
        config = process_config(tmp_path, db_url, f"smtp://127.0.0.1:{sink.port}", port)
        parties = register_with_cli(config)
        with serving(config, port, tmp_path) as serve:
            holder.append(serve)
            message = text_message(
                sender=parties.seller_mailbox, to=parties.buyer_alias, subject="once more"
            )
            send(port, parties.seller_mailbox, [parties.buyer_alias], message)
            assert serve.wait(20) == -signal.SIGKILL
        assert len(sink.received) == 1
        with serving(config, port, tmp_path) as serve:
            holder.append(serve)
            wait_for(lambda: len(sink.received) == 2, timeout=30)
            deployment_states = _queue_states(db_url)
            wait_for(lambda: _queue_states(db_url) == Counter(delivered=1), timeout=30)
            assert serve.stop() == 0
        first, second = (read_bytes(r.content) for r in sink.received)
    assert first["Message-ID"] == second["Message-ID"]
    for copy in (first, second):
        del copy["DKIM-Signature"]  # signed at each attempt: its time differs
    assert first.as_bytes() == second.as_bytes()
    assert len(sink.received) == 2, deployment_states


def _queue_states(database_url: str) -> Counter[str]:
    database = Database.from_url(database_url)
    try:
        with database.transaction() as session:
            rows = session.execute(
                sql_select(Outbound.state, func.count()).group_by(Outbound.state)
            ).all()
    finally:
        database.dispose()
    return Counter({state: count for state, count in rows})


# -- b. SIGTERM ------------------------------------------------------------------------------


def test_sigterm_exits_0_within_grace_and_the_message_arrives_once(
    deployment: Deployment,
) -> None:
    p = deployment.parties
    subject = f"sigterm test {secrets.token_hex(4)}"
    with deployment.serve() as serve:
        client = _send_and_hold(
            deployment.port, p.seller_mailbox, p.buyer_alias, deployment.message(subject)
        )
        started = time.monotonic()
        serve.signal(signal.SIGTERM)
        code = serve.wait(SHUTDOWN_GRACE + 10)
        elapsed = time.monotonic() - started
        client.close()
        assert code == 0, serve.stderr()
        assert elapsed < SHUTDOWN_GRACE, f"took {elapsed:.1f}s to stop"

    _assert_delivered_once_after_restart(deployment, subject)


@pytest.mark.parametrize("moment", ["after-rcpt", "inside-data", "end-of-data"])
def test_sigterm_mid_session_never_answers_250_for_what_it_did_not_store(
    deployment: Deployment, moment: str
) -> None:
    """SIGTERM after RCPT, halfway through the DATA text, or just as the final dot is sent.

    A 421 (or a closed connection) and nothing stored, or, for a DATA already in the
    gateway's hands, a 250 and the message delivered exactly once."""
    p = deployment.parties
    subject = f"mid-session {moment} {secrets.token_hex(4)}"
    data = deployment.message(subject)
    assert data.endswith(b"\r\n") and b"\r\n." not in data  # no dot-stuffing needed
    with deployment.serve() as serve:
        client = smtplib.SMTP("127.0.0.1", deployment.port, timeout=30)
        try:
            client.ehlo()
            assert client.mail(p.seller_mailbox)[0] == 250
            assert client.rcpt(p.buyer_alias)[0] == 250
            if moment != "after-rcpt":
                client.putcmd("data")
                assert client.getreply()[0] == 354
            if moment == "inside-data":
                client.send(data[: len(data) // 2])
            elif moment == "end-of-data":
                client.send(data + b".\r\n")

            serve.signal(signal.SIGTERM)
            signalled = time.monotonic()
            # The server speaks (250 or 421) or hangs up before the client goes on.
            readable, _, _ = select.select([client.sock], [], [], SHUTDOWN_GRACE + 5)
            assert readable, "the server neither answered nor closed the session"

            reply: tuple[int, bytes] | None
            try:
                if moment == "after-rcpt":
                    reply = client.data(data)
                elif moment == "inside-data":
                    client.send(data[len(data) // 2 :] + b".\r\n")
                    reply = client.getreply()
                else:
                    reply = client.getreply()
            except smtplib.SMTPServerDisconnected:
                reply = None
            except smtplib.SMTPResponseException as error:
                reply = (error.smtp_code, error.smtp_error)
        finally:
            client.close()
        assert serve.wait(SHUTDOWN_GRACE + 10) == 0, serve.stderr()
        elapsed = time.monotonic() - signalled
        assert elapsed < SHUTDOWN_GRACE, f"took {elapsed:.1f}s to stop"

    print(f"SIGTERM at {moment}: the client got {reply}")
    allowed = (250, 421) if moment == "end-of-data" else (421,)
    assert reply is None or reply[0] in allowed, f"answered {reply} while shutting down"
    if reply is not None and reply[0] == 250:
        _assert_delivered_once_after_restart(deployment, subject)
    else:
        # Not stored: no archive row and no queue row, so no process will ever deliver it.
        assert deployment.archived_count() == 0
        assert deployment.queue_states() == Counter()
        assert deployment.subjects() == Counter()


# -- c. no real address in the logs -----------------------------------------------------------


def test_serve_logs_are_json_and_never_name_a_real_address(deployment: Deployment) -> None:
    p = deployment.parties
    stranger = "stranger@elsewhere.example"
    port = deployment.port
    with deployment.serve() as serve:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            # Seller -> buyer, with the seller's address in the signature (scrubbed).
            message = text_message(
                sender=f"Owner <{p.seller_mailbox}>",
                to=p.buyer_alias,
                subject="Your parcel",
                body=f"It left today.\n--\n{p.seller_mailbox}\n",
            )
            assert client.sendmail(p.seller_mailbox, [p.buyer_alias], wire_bytes(message)) == {}
            # Buyer -> seller reply.
            reply = text_message(sender=p.buyer_address, to=p.seller_alias, subject="Thanks")
            assert client.sendmail(p.buyer_address, [p.seller_alias], wire_bytes(reply)) == {}
            # A stranger writes to the buyer alias: refused at RCPT, as if it did not exist.
            intruder = text_message(sender=stranger, to=p.buyer_alias, subject="Hi")
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail(stranger, [p.buyer_alias], wire_bytes(intruder))
            # The seller attaches a file with its own address: the leak guard refuses it.
            leaky = text_message(sender=p.seller_mailbox, to=p.buyer_alias, subject="Invoice")
            leaky.add_attachment(
                f"Invoice\nContact: {p.seller_mailbox}\n".encode(),
                maintype="application",
                subtype="octet-stream",
                filename="invoice.txt",
            )
            with pytest.raises(smtplib.SMTPDataError):
                client.sendmail(p.seller_mailbox, [p.buyer_alias], wire_bytes(leaky))
            # Relaying to the buyer's real address, and an alias that does not exist.
            client.rset()
            client.mail(p.seller_mailbox)
            assert client.rcpt(p.buyer_address)[0] == 554
            assert client.rcpt(f"aaaaaaaaaaaaaaaa@{p.buyer_alias.partition('@')[2]}")[0] == 550
            client.rset()
            # A sender address that does not parse.
            assert client.docmd("MAIL", f"FROM:<{p.buyer_address}>>")[0] >= 500
        deployment.wait_delivered(2, timeout=20)
        assert serve.stop() == 0
        stderr = serve.stderr()

    records = json_log_lines(stderr)
    events = Counter(r.get("event") for r in records)
    assert events["queued"] == 2 and events["delivered"] == 2, events
    assert events["refused"] == 1 and events["rcpt_refused"] == 3, events  # leak; stranger, ...
    # serve itself (not the worker processes it may run) starts and stops once.
    serve_events = Counter(r.get("event") for r in records if "worker" not in r)
    assert serve_events["started"] == 1 and serve_events["stopped"] == 1, events
    leaked = addresses_in_log(stderr, [p.seller_mailbox, p.buyer_address, stranger])
    assert leaked == [], "log lines naming a real address:\n" + "\n".join(leaked)
