"""A downstream SMTP server (aiosmtpd) that records what it receives and answers as told."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


SILENCE = "silence"


@dataclass
class Sink:
    """Replies to DATA from `script` in turn (then 250 for ever); keeps what it accepted.
    A script entry "silence" answers nothing for a minute (a smarthost that hangs). A
    recipient named in `refuse` always gets its reply there, whatever the script says."""

    script: list[str] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.attempts += 1
            refused = [self.refuse[r] for r in envelope.rcpt_tos if r in self.refuse]
            if refused:
                return refused[0]
            reply = self.script.pop(0) if self.script else "250 2.0.0 OK"
        if reply == SILENCE:
            await asyncio.sleep(60)
            return "451 4.4.2 too late"
        with self.lock:
            if reply.startswith("250"):
                self.received.append(
                    Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
                )
        return reply


@contextmanager
def smtp_sink(script: list[str] | None = None, port: int | None = None) -> Iterator[Sink]:
    sink = Sink(script=list(script or []), port=port or free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
