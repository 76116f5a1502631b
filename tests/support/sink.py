"""A downstream SMTP server (aiosmtpd) that records what it receives and answers as told."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


SILENCE = "silence"  # answers nothing for a minute (a smarthost that hangs)
CLOSE = "close"  # closes the connection once the message is sent, with no reply
AT_RCPT = "RCPT "  # a script entry "RCPT 450 ..." is the reply to the next RCPT
CLOSING = "CLOSING "  # "CLOSING 421 ...": the reply to DATA, then the connection closed


@dataclass
class Sink:
    """Replies to DATA from `script` in turn (then 250 for ever); keeps what it accepted.
    An entry may instead script RCPT (AT_RCPT), hang (SILENCE), close without a reply
    (CLOSE) or reply and close (CLOSING). A recipient named in `refuse` always gets its
    reply at DATA, whatever the script says. `on_data` is called with each message it
    accepts before it replies (a test acts at that moment)."""

    script: list[str] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    on_data: Callable[[Received], None] | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            scripted = self.script and self.script[0].startswith(AT_RCPT)
            if scripted:
                self.attempts += 1
                return self.script.pop(0).removeprefix(AT_RCPT)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

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
        if reply == CLOSE:
            server.transport.close()
            return "451 4.4.2 never sent"
        if reply.startswith(CLOSING):
            await server.push(reply.removeprefix(CLOSING))
            server.transport.close()
            return "451 4.4.2 never sent"
        if reply.startswith("250"):
            got = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
            if self.on_data is not None:
                self.on_data(got)
            with self.lock:
                self.received.append(got)
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
