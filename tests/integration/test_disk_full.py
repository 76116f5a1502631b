"""A disk filling up (a small tmpfs the test mounts holds the SQLite database): below
[smtp] disk_reserve MAIL gets 452 4.3.1 and mail is taken again once there is room; a disk
that fills completely fails the commit, 451, with no half record, and the gateway goes on."""

from __future__ import annotations

import contextlib
import os
import smtplib
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.audit.checkpointer import Checkpointer
from gateway.audit.purge import Purger
from gateway.core.clock import FrozenClock
from gateway.storage.schema import Message
from tests.support.databases import IN_CI
from tests.support.gateway import RunningGateway, running_gateway, wait_for
from tests.support.mail import text_message, wire_bytes

MIB = 1 << 20
DISK = 24 * MIB


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs: {mounted.stderr.strip()}"
        if IN_CI:
            pytest.fail(f"{reason}; CI must run the disk-full tests (as root)")
        pytest.skip(reason)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path, leave: int) -> Path:
    """A file that leaves `leave` bytes free on the disk of `folder` (0: full)."""
    filler = folder / "filler"
    with filler.open("wb") as handle, contextlib.suppress(OSError):
        free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
        chunk = b"\0" * MIB
        remaining = max(0, free - leave)
        while remaining > 0:
            handle.write(chunk[: min(MIB, remaining)])
            remaining -= MIB
        handle.flush()
    return filler


def _mail(gw: RunningGateway, sender: str) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
        client.ehlo()
        code, text = client.mail(sender)
    return code, text.decode()


def _records(gw: RunningGateway) -> int:
    with gw.gateway.database.transaction() as session:
        return session.scalar(select(func.count()).select_from(Message)) or 0


def _gateway(
    tmp_path: Path, disk: Path, reserve: int
) -> contextlib.AbstractContextManager[RunningGateway]:
    return running_gateway(
        tmp_path,
        f"sqlite:///{disk / 'gateway.db'}",
        smtp_config=f"disk_reserve = {reserve}",
    )


def test_mail_is_refused_452_while_the_disk_is_below_its_reserve(
    tmp_path: Path, small_disk: Path
) -> None:
    with _gateway(tmp_path, small_disk, 8 * MIB) as gw:
        parties = gw.register()
        gw.seller_writes(parties, subject="before")
        filler = _fill(small_disk, leave=4 * MIB)
        code, text = wait_for(
            lambda: (r := _mail(gw, parties.seller_mailbox))[0] != 250 and r, timeout=10
        )
        assert (code, text[:5]) == (452, "4.3.1"), text
        # What was taken goes on: its delivery (the maildir is on another disk) and a purge.
        assert len(gw.delivered(1)) == 1
        key = gw.gateway.services.archive_keys.active()
        assert key is not None
        Checkpointer(gw.gateway.database, key, gw.gateway.clock).run_once()  # purgeable
        later = datetime.now(UTC) + timedelta(days=731)
        assert Purger(gw.gateway.database, FrozenClock(later), 730).run().records == 1
        filler.unlink()
        wait_for(lambda: _mail(gw, parties.seller_mailbox)[0] == 250, timeout=10)
        gw.seller_writes(parties, subject="after")
        assert len(gw.delivered(2)) == 2


def test_a_full_disk_fails_the_commit_451_with_no_half_record_and_the_gateway_goes_on(
    tmp_path: Path, small_disk: Path
) -> None:
    with _gateway(tmp_path, small_disk, 0) as gw:
        parties = gw.register()
        gw.seller_writes(parties, subject="before")
        before = _records(gw)
        filler = _fill(small_disk, leave=0)
        big = text_message(
            sender=parties.seller_mailbox,
            to=parties.buyer_alias,
            subject="when full",
            body="a line of a long message\n" * 40_000,  # ~1 MB: more than any page left
        )
        with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as client:
            client.ehlo()
            client.mail(parties.seller_mailbox)
            client.rcpt(parties.buyer_alias)
            code, text = client.data(wire_bytes(big))
        assert (code, text[:5]) == (451, b"4.3.0"), text
        filler.unlink()
        assert _records(gw) == before  # nothing of it was kept
        gw.seller_writes(parties, subject="after")
        delivered = gw.delivered(2)
        assert len(delivered) == 2 and _records(gw) == before + 1
