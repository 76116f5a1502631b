"""A private Dovecot (Debian's dovecot-imapd) on a loopback port: its own config, a passdb of
test users, maildirs under a temporary folder. The system's Dovecot is not touched. Its
master must start as root (it drops to the `mail` user for the mailboxes)."""

from __future__ import annotations

import atexit
import imaplib
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from gateway.smtp.tls import make_self_signed
from tests.support.databases import IN_CI
from tests.support.sink import free_port

_PATH = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
DOVECOT = shutil.which("dovecot", path=_PATH)
DOVEADM = shutil.which("doveadm", path=_PATH)
HOSTNAME = "localhost"  # the name in the test certificate, which resolves to loopback
CATCHALL = "catchall@relay.example.test"  # the mailbox every instance has: the source

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
ssl = {ssl}
{ssl_files}
disable_plaintext_auth = no
auth_mechanisms = plain login
# A wrong password is answered at once: the tests of it need not wait out the default 2 s.
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 8
mail_location = maildir:{folder}/mail/%u
mail_uid = mail
mail_gid = mail
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/passwd
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={folder}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
{extra}
"""


def require_dovecot() -> str:
    """Skip without Dovecot (or root) on a developer machine; in CI that is a failure."""
    missing = None
    if DOVECOT is None:
        missing = "Dovecot is not installed (Debian: dovecot-imapd)"
    elif os.geteuid() != 0:
        missing = "Dovecot's master must start as root"
    if missing:
        if IN_CI:
            pytest.fail(f"{missing}; CI must run the IMAP tests")
        pytest.skip(missing)
    assert DOVECOT is not None
    return DOVECOT


@cache
def tls_files() -> tuple[Path, Path]:
    """A certificate for `localhost`, which the gateway checks as a client would."""
    folder = Path(tempfile.mkdtemp(prefix="bsm-imap-tls-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.chmod(folder, 0o755)
    certificate, key = folder / "cert.pem", folder / "key.pem"
    make_self_signed(certificate, key, HOSTNAME)
    os.chmod(key, 0o644)
    return certificate, key


@dataclass
class Dovecot:
    folder: Path
    port: int
    tls_port: int
    users: dict[str, str] = field(default_factory=dict)
    _pid: int | None = None

    @property
    def master_pid(self) -> int | None:
        return self._pid

    @property
    def config(self) -> Path:
        return self.folder / "dovecot.conf"

    @property
    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def add_user(self, user: str, password: str) -> None:
        self.users[user] = password
        lines = [f"{name}:{{PLAIN}}{secret}" for name, secret in self.users.items()]
        (self.folder / "passwd").write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        assert DOVECOT is not None
        subprocess.run([DOVECOT, "-c", str(self.config)], check=True, timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with suppress(OSError):
                imaplib.IMAP4("127.0.0.1", self.port, timeout=2).logout()
                self._pid = int((self.folder / "run" / "master.pid").read_text())
                return
            time.sleep(0.05)
        raise AssertionError(f"Dovecot did not start:\n{self.log}")

    def stop(self) -> None:
        """Stopped, every connection dropped at once (as a crashed or rebooted server): its
        imap processes would otherwise serve their sessions on after the master ended."""
        if self._pid is None:
            return
        children = _children(self._pid)
        with suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        for pid in children:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        for pid in (self._pid, *children):
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.02)
        (self.folder / "run" / "master.pid").unlink(missing_ok=True)
        self._pid = None

    def kick(self, user: str) -> None:
        """The user's sessions told `* BYE` and closed, as an administrator does."""
        assert DOVEADM is not None
        subprocess.run([DOVEADM, "-c", str(self.config), "kick", user], check=True, timeout=30)

    @contextmanager
    def session(self, user: str) -> Iterator[imaplib.IMAP4]:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            client.login(user, self.users[user])
            yield client
        finally:
            with suppress(Exception):
                client.logout()

    def append(self, user: str, message: bytes, folder: str = "INBOX") -> int:
        """APPEND as a delivering server would; returns the new message's UID."""
        with self.session(user) as client:
            client.create(folder)
            status, data = client.append(folder, None, None, message)
            assert status == "OK", data
            found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert found, data
            return int(found.group(1))

    def messages(self, user: str, folder: str) -> list[bytes]:
        """The messages of `folder`, oldest first ([] if it does not exist)."""
        with self.session(user) as client:
            status, _ = client.select(folder, readonly=True)
            if status != "OK":
                return []
            _, data = client.uid("SEARCH", None, "ALL")  # type: ignore[arg-type]
            uids = data[0].split() if data and data[0] else []
            found = []
            for uid in uids:
                _, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
                found.append(next(p[1] for p in parts if isinstance(p, tuple)))
            return found

    def flags(self, user: str, folder: str) -> list[str]:
        with self.session(user) as client:
            client.select(folder, readonly=True)
            _, data = client.fetch("1:*", "(FLAGS)")
            return [part.decode() for part in data if isinstance(part, bytes)]

    def recreate(self, user: str, folder: str) -> None:
        """The folder deleted and made again: it gets a new UIDVALIDITY, its messages new
        UIDs (as a restore from backup or a server migration does)."""
        with self.session(user) as client:
            client.select(folder)
            _, data = client.uid("SEARCH", None, "ALL")  # type: ignore[arg-type]
            uids = data[0].split() if data and data[0] else []
            kept = []
            for uid in uids:
                _, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
                kept.append(next(p[1] for p in parts if isinstance(p, tuple)))
            client.close()
            # INBOX cannot be deleted: the test uses another folder to recreate.
            assert client.delete(folder)[0] == "OK"
            assert client.create(folder)[0] == "OK"
            for message in kept:
                assert client.append(folder, None, None, message)[0] == "OK"

    def uidvalidity(self, user: str, folder: str) -> int:
        with self.session(user) as client:
            _, data = client.status(folder, "(UIDVALIDITY)")
            found = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
            assert found, data
            return int(found.group(1))


def _children(parent: int) -> list[int]:
    """The processes whose parent is `parent` (Dovecot's master starts every other)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child stays a zombie until its parent reaps it: that counts as gone.
    with suppress(OSError):
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2][:3]
    return False


@contextmanager
def running_dovecot(tls: bool = False, capability: str | None = None) -> Iterator[Dovecot]:
    """A private Dovecot; with `tls`, port `tls_port` speaks implicit TLS and `port` offers
    STARTTLS, both with a certificate for `localhost`. `capability`: what it announces
    after login instead of all it has (an older server: no MOVE, no UIDPLUS)."""
    require_dovecot()
    folder = Path(tempfile.mkdtemp(prefix="bsm-dovecot-"))
    os.chmod(folder, 0o755)  # the mail user and Dovecot's own users must reach it
    (folder / "mail").mkdir()
    shutil.chown(folder / "mail", "mail", "mail")
    if tls:
        certificate, key = tls_files()
        ssl_files = f"ssl_cert = <{certificate}\nssl_key = <{key}"
    else:
        ssl_files = ""
    dovecot = Dovecot(folder, free_port(), free_port() if tls else 0)
    dovecot.config.write_text(
        CONFIG.format(
            folder=folder,
            port=dovecot.port,
            tls_port=dovecot.tls_port,
            ssl="yes" if tls else "no",
            ssl_files=ssl_files,
            extra=f"imap_capability = {capability}" if capability else "",
        )
    )
    dovecot.add_user(CATCHALL, "catch-all-password")
    try:
        dovecot.start()
        yield dovecot
    finally:
        dovecot.stop()
        shutil.rmtree(folder, ignore_errors=True)


def tls_client() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files()[0]))
