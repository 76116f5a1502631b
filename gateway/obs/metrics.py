"""Prometheus metrics of one gateway process, in a registry of its own (no global state).
Several processes share their counts through files in one folder (prometheus-client's
multiprocess mode), and one of them serves the sum."""

from __future__ import annotations

import os
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

_SHARED = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's name for the folder


def share_between_processes(folder: Path) -> None:
    """From now on, every metric made in this process or a process forked from it counts
    in files under `folder` (call before any metric is made)."""
    os.environ[_SHARED] = str(folder)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def process_gone(pid: int) -> None:
    """A process that shared its counts has ended (its counts stay in the sums)."""
    if _SHARED in os.environ:
        mark_process_dead(pid, os.environ[_SHARED])  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.auth_attempts = Counter(
            "bsm_auth_attempts",
            "SMTP AUTH attempts on the submission ports, by result",
            ["result"],  # success | failure | locked
            registry=self.registry,
        )
        self.auth_lockouts = Counter(
            "bsm_auth_lockouts",
            "Client addresses or user names locked out after repeated AUTH failures",
            ["scope"],  # client | user
            registry=self.registry,
        )
        self.messages = Counter(
            "bsm_messages",
            "Messages per recipient at the end of DATA, by listener and verdict",
            ["listener", "verdict"],  # verdict: accepted | refused
            registry=self.registry,
        )
        self.sender_auth = Counter(
            "bsm_sender_auth",
            "Sender authentication on the MX path, by method and result",
            ["method", "result"],
            registry=self.registry,
        )
        self.rule_hits = Counter(
            "bsm_rule_hits",
            "Rule violations per recipient, by rule id and mode (enforce refused, shadow only "
            "recorded)",
            ["rule", "mode"],
            registry=self.registry,
        )
        self.policy_reloads = Counter(
            "bsm_policy_reloads",
            "Content policy reloads (SIGHUP), by result",
            ["result"],  # loaded | refused
            registry=self.registry,
        )
        self.imap_messages = Counter(
            "bsm_imap_messages",
            "Messages of a mailbox source, by what became of them",
            # fetched | processed (archived, a reply of 250) | refused | duplicate (taken in
            # before: only moved or flagged) | quarantined | deferred (left for a retry)
            ["source", "outcome"],
            registry=self.registry,
        )
        self.imap_errors = Counter(
            "bsm_imap_errors",
            "Failures of a mailbox source's connection, by kind",
            # auth | connect | tls | timeout | dropped | protocol | database | internal
            ["source", "kind"],
            registry=self.registry,
        )
        self.imap_state = Gauge(
            "bsm_imap_state",
            "A mailbox source's state in this process: 1 for the state it is in",
            # standby (another process polls it) | connecting | idle | polling | fetching
            # | backoff | auth_failed
            ["source", "state"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self._server: WSGIServer | None = None

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics over HTTP from a thread; returns the bound port. Where processes
        share their counts, the sums over all of them are served."""
        registry = self.registry
        shared = os.environ.get(_SHARED)
        if shared:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=shared)  # type: ignore[no-untyped-call]
        self._server, _ = start_http_server(port, host, registry=registry)
        bound: int = self._server.server_port
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
