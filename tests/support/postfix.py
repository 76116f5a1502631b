"""A private Postfix instance on a loopback port that relays every message to one host.

Each instance has its own main.cf/master.cf, queue and log under the test's folder (and a
data directory in /tmp, see below); the system instance (/etc/postfix, /var/spool/postfix)
is not touched and need not be configured. Postfix's master must start as root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.databases import IN_CI

# Postfix installs into /usr/sbin, which a minimal PATH may lack.
POSTFIX = shutil.which("postfix", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
myhostname = {myhostname}
mydomain = {myhostname}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_relay_restrictions = permit_mynetworks, reject
# Nothing is local: every recipient goes to the relay host, reached without DNS.
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is off
alias_maps =
alias_database =
relayhost = [{relay_host}]:{relay_port}
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_security_level = {outbound_tls}
smtp_tls_loglevel = 1
smtpd_tls_security_level = none
# Queue runs and retries every second or two, so a deferral or bounce shows within a test.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maximal_queue_lifetime = 10m
bounce_queue_lifetime = 10m
in_flow_delay = 0s
# Logs go to a file the tests read, through the postlog service in master.cf.
maillog_file = {folder}/maillog
maillog_file_prefixes = {folder}
syslog_name = postfix-{port}
"""

# Only what relaying needs; no chroot, as the queue is not laid out as a jail.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix n - n 60  1 pickup
cleanup   unix n - n -   0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n -   - trivial-rewrite
bounce    unix - - n -   0 bounce
defer     unix - - n -   0 bounce
trace     unix - - n -   0 bounce
verify    unix - - n -   1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n -   - proxymap
smtp      unix - - n -   - smtp
tlsmgr    unix - - n 1000? 1 tlsmgr
relay     unix - - n -   - smtp
showq     unix n - n -   - showq
error     unix - - n -   - error
retry     unix - - n -   - error
discard   unix - - n -   - discard
anvil     unix - - n -   1 anvil
scache    unix - - n -   1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@dataclass
class Postfix:
    folder: Path
    port: int
    config_dir: Path
    data_dir: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        """Postfix's maillog so far."""
        path = self.folder / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, text: str, timeout: float = 20) -> str:
        """Wait until the maillog contains `text`; returns the whole log."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in Postfix's log after {timeout}s:\n{log}")
            time.sleep(0.1)
        return log

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`postfix -c <this instance> ARGS`."""
        assert POSTFIX is not None
        return subprocess.run(
            [POSTFIX, "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )


def require_postfix() -> str:
    """Skip without Postfix (or root) on a developer machine; in CI that is a failure."""
    missing = (
        "Postfix is not installed"
        if POSTFIX is None
        else "Postfix's master needs root"
        if os.geteuid() != 0
        else None
    )
    if missing:
        if IN_CI:
            pytest.fail(f"{missing}; CI must run the Postfix tests")
        pytest.skip(missing)
    assert POSTFIX is not None
    return POSTFIX


@contextmanager
def running_postfix(
    folder: Path,
    *,
    port: int,
    relay_to: tuple[str, int],
    myhostname: str = "provider.example.test",
    starttls: bool = False,
) -> Iterator[Postfix]:
    """Postfix on 127.0.0.1:`port`, relaying every message it accepts to `relay_to`, with
    STARTTLS where offered if `starttls` (certificates unchecked: opportunistic TLS)."""
    postfix = require_postfix()
    folder = folder.resolve()
    config, queue = folder / "etc", folder / "spool"
    for path in (config, queue):
        path.mkdir(parents=True, exist_ok=True)
    # The master opens its lock file here as user postfix, which cannot get through pytest's
    # 0700 temporary folders; the queue needs no such path (daemons chdir into it as root).
    data = Path(tempfile.mkdtemp(prefix=f"postfix-{port}-"))
    shutil.chown(data, "postfix", "postfix")
    values = {
        "queue": queue,
        "data": data,
        "folder": folder,
        "myhostname": myhostname,
        "relay_host": relay_to[0],
        "relay_port": relay_to[1],
        "port": port,
        "outbound_tls": "may" if starttls else "none",
    }
    (config / "main.cf").write_text(MAIN_CF.format(**values))
    (config / "master.cf").write_text(MASTER_CF.format(**values))
    # Postfix pauses until a config file is over a second old (it may be mid-edit): backdate.
    past = time.time() - 60
    for name in ("main.cf", "master.cf"):
        os.utime(config / name, (past, past))
    # start-fg fills in the queue's directories, then runs the master as its child.
    with (folder / "start-fg.out").open("wb") as output:
        process = subprocess.Popen(
            [postfix, "-c", str(config), "start-fg"], stdout=output, stderr=subprocess.STDOUT
        )
    instance = Postfix(folder, port, config, data, process)
    try:
        _wait_started(instance)
        yield instance
    finally:
        _stop(instance)
        shutil.rmtree(data, ignore_errors=True)


def _wait_started(instance: Postfix, timeout: float = 30) -> None:
    """The master logs this once its listener is bound (a bind failure is fatal before)."""
    deadline = time.monotonic() + timeout
    while instance.process.poll() is None and time.monotonic() < deadline:
        if "daemon started" in instance.log():
            return
        time.sleep(0.05)
    output = (instance.folder / "start-fg.out").read_text(errors="replace")
    raise AssertionError(f"Postfix did not start on {instance.port}:\n{output}{instance.log()}")


def _stop(instance: Postfix) -> None:
    """`postfix stop`; should the master outlive it, kill its process group by its pid."""
    instance.command("stop")
    with suppress(subprocess.TimeoutExpired):
        instance.process.wait(20)
        return
    pid_file = instance.folder / "spool" / "pid" / "master.pid"
    with suppress(OSError, ValueError):
        os.killpg(int(pid_file.read_text().split()[0]), signal.SIGKILL)  # it leads its group
    instance.process.kill()
    instance.process.wait(10)
