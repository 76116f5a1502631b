"""Several gateway processes on one machine: Python runs one thread of Python at a time per
process, so the gateway uses every core by running one process per core.

The parent binds the ports, one socket per process and port (SO_REUSEPORT: the kernel
spreads new connections over them), compiles the policy, prepares the database, and forks
the workers; each worker runs a whole gateway (listeners, intake, committer, delivery) on
its own event loop. One more process keeps the archive (its log's checkpointer, the search
indexer, the daily purge) at a lower CPU priority, so that intake keeps the CPU it needs.
The parent then only waits: it restarts a worker that died (on the same
sockets, so no connection is refused meanwhile), passes SIGHUP on (and reloads the policy
for workers it starts later), and on SIGTERM passes it on and waits for every worker to
drain. A worker dies with its parent (PR_SET_PDEATHSIG), as a single process would.

The parent starts no thread, so that forking a worker later is as safe as at the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from gateway.app import Gateway, keep_archive, prepare
from gateway.intake.policy import Policy
from gateway.obs.log import get_logger
from gateway.obs.metrics import process_gone, share_between_processes
from gateway.services import Services, compile_policy
from gateway.settings import ConfigError, Settings
from gateway.storage.database import Database

_log = get_logger("supervisor")
WORKER_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
_SIGNALS = {*WORKER_SIGNALS, signal.SIGCHLD}
BACKLOG = 1024  # connections a listening socket queues
QUICK_DEATH = 60.0  # a worker dying sooner after its start is restarted ever more slowly
MAX_RESTART_DELAY = 30.0
STOP_MARGIN = 30.0  # past shutdown_grace, the seconds a worker has to exit before SIGKILL
# The archive's process (checkpointer, search indexer, purge) yields the CPU to the workers.
ARCHIVE_NICENESS = 10


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    host: str
    port: int


def endpoints(settings: Settings) -> list[Endpoint]:
    """The listeners the settings ask for."""
    found = [Endpoint("mx", settings.smtp.host, settings.smtp.port)]
    submission = settings.submission
    if submission.enabled:
        found.append(Endpoint("submission", submission.host, submission.starttls_port))
        found.append(Endpoint("submissions", submission.host, submission.tls_port))
    return found


def bind(host: str, port: int) -> socket.socket:
    """A listening socket that other sockets of this machine may bind to the same port."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listening = socket.socket(family, kind, proto)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listening.bind(address)
        listening.listen(BACKLOG)
    except OSError:
        listening.close()
        raise
    listening.setblocking(False)
    return listening


@dataclass
class _Worker:
    slot: int
    pid: int = 0
    started: float = 0.0  # monotonic
    restart_at: float | None = None  # monotonic; None: running, or not to be restarted
    delay: float = 0.0


class Supervisor:
    def __init__(self, settings: Settings, policy: Policy) -> None:
        self._settings = settings
        self._policy = policy
        self._count = settings.server.process_count
        self._sockets: list[dict[str, socket.socket]] = []
        # The workers, then the archive's own process (slot = the worker count).
        self._workers = [_Worker(slot) for slot in range(self._count + 1)]
        self._stopping = False
        self._stop_deadline = 0.0
        self._failed = False

    # -- the parent -----------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM (or SIGINT); the exit status (0: every worker stopped
        cleanly). Raises ConfigError if a port cannot be bound."""
        services = Services.open(self._settings)
        try:
            prepare(services)
        finally:
            services.close()
        self._bind()
        shared = Path(tempfile.mkdtemp(prefix="bsm-metrics-"))
        share_between_processes(shared)
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for worker in self._workers:
                self._start(worker)
            _log.info(
                "started",
                ports={name: s.getsockname()[1] for name, s in self._sockets[0].items()},
                processes=self._count,
                workers=[w.pid for w in self._workers[: self._count]],
                archive_keeper=self._workers[self._count].pid,
                policy_version=self._policy.version,
            )
            self._watch()
        finally:
            for sockets in self._sockets:
                for listening in sockets.values():
                    listening.close()
            shutil.rmtree(shared, ignore_errors=True)
        _log.info("stopped", clean=not self._failed)
        return 1 if self._failed else 0

    def _bind(self) -> None:
        for slot in range(self._count):
            sockets = {}
            for endpoint in endpoints(self._settings):
                # Port 0: the first socket chooses a port, the others share it.
                port = self._sockets[0][endpoint.name].getsockname()[1] if slot else endpoint.port
                try:
                    sockets[endpoint.name] = bind(endpoint.host, port)
                except OSError as error:
                    raise ConfigError(
                        f"config error: {endpoint.name}: cannot listen on "
                        f"{endpoint.host}:{port}: {error.strerror or error}"
                    ) from None
            self._sockets.append(sockets)

    def _watch(self) -> None:
        while True:
            info = signal.sigtimedwait(_SIGNALS, self._next_timeout())
            if info is not None:
                self._on_signal(info.si_signo)
            self._reap()
            if self._stopping:
                if not any(w.pid for w in self._workers):
                    return
                if time.monotonic() > self._stop_deadline:
                    self._kill_all()
            else:
                self._restart_due()

    def _next_timeout(self) -> float:
        now = time.monotonic()
        due = [w.restart_at - now for w in self._workers if w.restart_at is not None]
        if self._stopping:
            due.append(self._stop_deadline - now)
        return max(0.05, min(due, default=5.0))

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT) and not self._stopping:
            _log.info("stopping")
            self._stopping = True
            self._stop_deadline = time.monotonic() + self._settings.smtp.shutdown_grace
            self._stop_deadline += STOP_MARGIN
            self._send_all(signal.SIGTERM)
        elif signum == signal.SIGHUP and not self._stopping:
            self._reload()
            self._send_all(signal.SIGHUP)

    def _reload(self) -> None:
        """The policy the workers started from now on begin with. Each running worker
        reloads its own and logs the outcome; a broken policy leaves this one as it is."""
        with contextlib.suppress(ConfigError):
            self._policy = compile_policy(self._settings)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = next((w for w in self._workers if w.pid == pid), None)
            if worker is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            process_gone(pid)
            worker.pid = 0
            if self._stopping:
                self._failed |= code != 0
                _log.info("worker_stopped", worker=worker.slot, pid=pid, code=code)
                continue
            lived = time.monotonic() - worker.started
            restart = self._settings.server.restart_delay
            worker.delay = (
                min(MAX_RESTART_DELAY, max(restart, worker.delay * 2))
                if lived < QUICK_DEATH
                else restart
            )
            worker.restart_at = time.monotonic() + worker.delay
            _log.error(
                "worker_died", worker=worker.slot, pid=pid, code=code, restart_in=worker.delay
            )

    def _restart_due(self) -> None:
        now = time.monotonic()
        for worker in self._workers:
            if worker.restart_at is not None and worker.restart_at <= now:
                self._start(worker)

    def _send_all(self, signum: int) -> None:
        for worker in self._workers:
            if worker.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signum)

    def _kill_all(self) -> None:
        _log.error("workers_killed", pids=[w.pid for w in self._workers if w.pid])
        self._failed = True
        self._send_all(signal.SIGKILL)

    def _start(self, worker: _Worker) -> None:
        worker.restart_at = None
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os._exit(self._serve(worker.slot, parent))
        worker.pid = pid
        worker.started = time.monotonic()

    # -- a worker -------------------------------------------------------------------

    def _serve(self, slot: int, parent: int) -> int:
        """In the forked worker: a whole gateway on this slot's sockets; its exit status."""
        try:
            # SIGTERM, SIGINT and SIGHUP stay blocked until the worker's loop handles them
            # (Gateway.run_until_signalled): one that arrives meanwhile waits, not kills.
            signal.pthread_sigmask(signal.SIG_SETMASK, WORKER_SIGNALS)
            _die_with(parent)
            for other, sockets in enumerate(self._sockets):
                if other != slot:
                    for listening in sockets.values():
                        listening.close()
            structlog.contextvars.bind_contextvars(worker=slot)
            if slot == self._count:  # the archive's process: it listens on nothing
                os.nice(ARCHIVE_NICENESS)
                asyncio.run(
                    keep_archive(self._settings, Database.from_url(self._settings.database_url))
                )
                return 0
            gateway = Gateway(
                self._settings,
                database=Database.from_url(self._settings.database_url),
                policy=self._policy,
                sockets=self._sockets[slot],
                serves_admin=slot == 0,
                serves_metrics=slot == 0,
                keeps_archive_log=False,  # the archive's own process keeps it
            )
            asyncio.run(gateway.run_until_signalled())
            return 0
        except BaseException as error:  # whatever happens, the worker must not return
            _log.error("worker_failed", worker=slot, exc_info=error)
            return 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()


_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """This process is killed when its parent dies, however it dies (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
