"""IMAP ingest in `bsm-gateway serve` processes: killed between the commit and the MOVE it is
taken in once; two processes on one PostgreSQL poll a source one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.storage.database import Database
from gateway.storage.imap import MailboxLedger
from tests.integration.test_imap import delivered_by_mx, imap_config
from tests.support.databases import postgres_schema
from tests.support.dovecot import CATCHALL, Dovecot, running_dovecot
from tests.support.gateway import CLAIM_LEASE, wait_for
from tests.support.process import (
    Serve,
    json_log_lines,
    process_config,
    register_with_cli,
    reserve_port,
    serving,
)
from tests.support.proxy import tcp_proxy

LEASE = 6.0  # imap_config's lease


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot() as server:
        yield server


def serve_config(folder: Path, database_url: str, maildir: Path, imap: str) -> tuple[Path, int]:
    port = reserve_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = process_config(folder, database_url, f"maildir:{maildir}", port)
    config.write_text(config.read_text() + imap)
    return config, port


def count(database_url: str, sql: str) -> int:
    database = Database.from_url(database_url)
    try:
        with database.read_connection() as connection:
            return int(connection.exec_driver_sql(sql).scalar_one())
    finally:
        database.dispose()


def delivered(maildir: Path) -> int:
    new = maildir / "new"
    return len(list(new.iterdir())) if new.exists() else 0


def test_killed_between_commit_and_move_takes_the_message_in_once(
    tmp_path: Path, db_url: str, dovecot: Dovecot
) -> None:
    maildir = tmp_path / "outbox"
    with tcp_proxy("127.0.0.1", dovecot.port) as proxy:
        config, port = serve_config(
            tmp_path, db_url, maildir, imap_config(dovecot, port=proxy.port)
        )
        parties = register_with_cli(config)
        proxy.hold_when(b"UID MOVE")  # the gateway stops right after its commit
        with serving(config, port, tmp_path) as serve:
            dovecot.append(CATCHALL, delivered_by_mx(parties))
            assert proxy.held.wait(30), serve.stderr()
            assert count(db_url, "SELECT count(*) FROM imap_messages") == 1
            serve.kill()
        proxy.hold_when(None)
        proxy.cut()
        proxy.restore()
        assert dovecot.messages(CATCHALL, "INBOX") != []  # never moved

        with serving(config, port, tmp_path) as serve:
            # The lease of the killed process runs out first; then it is found, and moved.
            wait_for(lambda: dovecot.messages(CATCHALL, "INBOX") == [], timeout=LEASE + 20)
            assert len(dovecot.messages(CATCHALL, "Processed")) == 1
            # Its delivery, leased to the killed process, is made once that lease is out.
            wait_for(lambda: delivered(maildir) == 1, timeout=CLAIM_LEASE + 20)
            assert serve.stop() == 0
    assert count(db_url, "SELECT count(*) FROM messages") == 1
    assert count(db_url, "SELECT count(*) FROM imap_messages") == 1
    assert delivered(maildir) == 1


def test_two_serve_processes_on_postgresql_poll_one_source_one_at_a_time(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    maildir = tmp_path / "outbox"
    with postgres_schema() as database_url:
        configs = [
            serve_config(tmp_path / name, database_url, maildir, imap_config(dovecot))
            for name in ("a", "b")
        ]
        parties = register_with_cli(configs[0][0])
        with (
            serving(*configs[0], tmp_path, "serve-a") as first,
            serving(*configs[1], tmp_path, "serve-b") as second,
        ):
            for number in range(20):
                dovecot.append(CATCHALL, delivered_by_mx(parties, f"Message {number}.\n"))
            wait_for(lambda: delivered(maildir) == 20, timeout=60)
            polling = [s for s in (first, second) if _connected(s)]
            assert len(polling) == 1, "exactly one process polls the source"
            [holder] = polling
            other = second if holder is first else first

            holder.kill()  # the other takes the source over once the lease has run out
            for number in range(20, 25):
                dovecot.append(CATCHALL, delivered_by_mx(parties, f"Message {number}.\n"))
            wait_for(lambda: delivered(maildir) == 25, timeout=LEASE + 30)
            assert _connected(other)
            wait_for(lambda: dovecot.messages(CATCHALL, "INBOX") == [])
            assert other.stop() == 0
        assert count(database_url, "SELECT count(*) FROM messages") == 25
        assert count(database_url, "SELECT count(*) FROM imap_messages") == 25
        database = Database.from_url(database_url)
        try:
            [state] = MailboxLedger(database).states()
        finally:
            database.dispose()
        assert state.taken == 25
    assert delivered(maildir) == 25


def _connected(serve: Serve) -> bool:
    return any(r.get("event") == "imap_connected" for r in json_log_lines(serve.stderr()))
