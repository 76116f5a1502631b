"""Prometheus metrics of one gateway process, in a registry of its own (no global state).
Several processes share their counts through files in one folder (prometheus-client's
multiprocess mode), and one of them serves the sum, with /healthz and /readyz beside it."""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from gateway.core.model import ArchiveLoad, QueueLoad
from gateway.obs.health import Health

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
        self.deliveries = Counter(
            "bsm_delivery_attempts",
            "Delivery attempts, by result",
            ["result"],  # delivered | deferred | failed
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "bsm_delivery_seconds",
            "Time from a message's acceptance to its delivery",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 1800, 7200, 86400),
            registry=self.registry,
        )
        self.notices = Counter(
            "bsm_dsns",
            "Delivery status notifications the gateway sent back, by why",
            # failed (a delivery given up) | returned (a bounce received later) | refused (a
            # refusal told by mail: a mailbox source's, or some recipients' of a message)
            ["reason"],
            registry=self.registry,
        )
        self._server: WSGIServer | None = None

    def serve(
        self,
        host: str,
        port: int,
        health: Health,
        queue: Callable[[], QueueLoad] | None = None,
        archive: Callable[[], ArchiveLoad] | None = None,
    ) -> int:
        """Serve /metrics, /healthz and /readyz over HTTP from a thread; returns the bound
        port. Where processes share their counts, the sums over all of them are served;
        the queue and the archive, read from the database at each scrape, are everyone's."""
        registry = self.registry
        shared = os.environ.get(_SHARED)
        if shared:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=shared)  # type: ignore[no-untyped-call]
        if queue is not None:
            registry.register(_QueueCollector(queue))
        if archive is not None:
            registry.register(_ArchiveCollector(archive))
        app = _endpoint(make_wsgi_app(registry), health)
        server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        self._server = server
        return server.server_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _QueueCollector(Collector):
    """The delivery queue as the database holds it, read when scraped."""

    def __init__(self, queue: Callable[[], QueueLoad]) -> None:
        self._queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            load = self._queue()
        except Exception:  # the database is away: /readyz says so, the scrape goes on
            return
        depth = GaugeMetricFamily(
            "bsm_queue_depth", "Deliveries waiting in the queue, by whether due", labels=["state"]
        )
        depth.add_metric(["due"], load.due)
        depth.add_metric(["waiting"], load.waiting)
        yield depth
        yield GaugeMetricFamily(
            "bsm_queue_oldest_due_seconds",
            "How long the longest-waiting due delivery has waited (0 if none is due)",
            value=load.oldest_due_age,
        )


class _ArchiveCollector(Collector):
    """The archive's log as the database holds it, read when scraped."""

    def __init__(self, archive: Callable[[], ArchiveLoad]) -> None:
        self._archive = archive

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            load = self._archive()
        except Exception:  # the database is away: /readyz says so, the scrape goes on
            return
        yield GaugeMetricFamily(
            "bsm_archive_log_size", "Records in the archive's log", value=load.log_size
        )
        yield GaugeMetricFamily(
            "bsm_archive_unlogged",
            "Committed records waiting for their place in the log",
            value=load.unlogged,
        )
        yield GaugeMetricFamily(
            "bsm_archive_checkpoint_age_seconds",
            "Seconds since the log's last signed checkpoint (NaN before the first)",
            value=math.nan if load.checkpoint_age is None else load.checkpoint_age,
        )


_App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _endpoint(metrics: _App, health: Health) -> _App:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            problem = health.live()
            body: dict[str, Any] = {"status": "ok"}
            if problem is not None:
                body = {"status": "stalled", "why": problem}
            return _json(start_response, problem is None, body)
        if path == "/readyz":
            findings = health.ready()
            ready = all(f.problem is None for f in findings)
            checks = {f.probe: f.problem or "ok" for f in findings}
            body = {"status": "ready" if ready else "not ready", "checks": checks}
            return _json(start_response, ready, body)
        return metrics(environ, start_response)

    return app


def _json(start_response: Callable[..., Any], ok: bool, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    status = "200 OK" if ok else "503 Service Unavailable"
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds
        pass
