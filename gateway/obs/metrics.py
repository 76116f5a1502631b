"""Prometheus metrics of one gateway process, in a registry of its own (no global state)."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, start_http_server


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
        self._server: WSGIServer | None = None

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics over HTTP from a thread; returns the bound port."""
        self._server, _ = start_http_server(port, host, registry=self.registry)
        bound: int = self._server.server_port
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
