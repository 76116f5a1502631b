"""One IMAP connection to a mailbox source, over aioimaplib: connect (implicit TLS, STARTTLS
or plain), log in, select, search, fetch, move or flag, IDLE. Every command has a deadline:
a server that stops answering (inside IDLE too) is a MailboxError, never a hang."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioimaplib
from aioimaplib.aioimaplib import Command

from gateway.core.addresses import ADDRESS_IN_TEXT

# Keyword a message gets, with \Seen, when the source flags rather than moves.
TAKEN_KEYWORD = "$BsmTaken"

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_UID = re.compile(rb"UID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class MailboxError(Exception):
    """The connection failed; `kind` names how (for logs and metrics), the text says more
    but never the password or an address."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind


class AuthenticationFailed(MailboxError):
    def __init__(self, text: str) -> None:
        super().__init__("auth", text)


@dataclass(frozen=True, slots=True)
class Selected:
    uidvalidity: int
    exists: int


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    tls: str  # implicit | starttls | none
    ca_file: Path | None
    user: str
    timeout: float


def _tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(endpoint.ca_file) if endpoint.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _text(response: Any) -> str:
    """A response's last line, as the server worded it (for an error message), with any
    address in it (a server may name the user) left out."""
    lines = [bytes(line) for line in response.lines if isinstance(line, bytes | bytearray)]
    text = lines[-1].decode("utf-8", "replace")[:200] if lines else str(response.result)
    return ADDRESS_IN_TEXT.sub("[address]", text)


class MailboxConnection:
    def __init__(self, client: aioimaplib.IMAP4, endpoint: Endpoint) -> None:
        self._client = client
        self._endpoint = endpoint
        self._lost = asyncio.Event()

    @classmethod
    async def open(cls, endpoint: Endpoint, password: str) -> MailboxConnection:
        """Connected, TLS as configured, logged in."""
        timeout = endpoint.timeout
        try:
            if endpoint.tls == "implicit":
                client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                    endpoint.host,
                    endpoint.port,
                    timeout=timeout,
                    ssl_context=_tls_context(endpoint),
                )
            else:
                client = aioimaplib.IMAP4(endpoint.host, endpoint.port, timeout=timeout)
            connection = cls(client, endpoint)
            client.protocol.conn_lost_cb = lambda _error: connection._lost.set()
            await client.wait_hello_from_server()
            if endpoint.tls == "starttls":
                await connection._starttls()
            response = await client.login(endpoint.user, password)
        except TimeoutError:
            raise MailboxError("timeout", "the server did not answer in time") from None
        except ssl.SSLError as error:
            raise MailboxError("tls", f"TLS failed: {error.reason or error}") from None
        except OSError as error:
            raise MailboxError("connect", f"cannot connect: {error.strerror or error}") from None
        except aioimaplib.AioImapException as error:
            raise MailboxError("protocol", f"the server refused: {error}") from None
        if response.result != "OK":
            await connection.close()
            raise AuthenticationFailed(f"login refused: {_text(response)}")
        return connection

    async def _starttls(self) -> None:
        protocol = self._client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise MailboxError("tls", "the server does not offer STARTTLS")
        command = Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await asyncio.wait_for(protocol.execute(command), self._endpoint.timeout)
        if response.result != "OK":
            raise MailboxError("tls", f"STARTTLS refused: {_text(response)}")
        loop = asyncio.get_running_loop()
        protocol.transport = await asyncio.wait_for(
            loop.start_tls(
                protocol.transport,
                protocol,
                _tls_context(self._endpoint),
                server_hostname=self._endpoint.host,
            ),
            self._endpoint.timeout,
        )
        # RFC 3501 6.2.1: what the server offered before TLS no longer holds.
        await asyncio.wait_for(protocol.capability(), self._endpoint.timeout)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def has(self, capability: str) -> bool:
        return bool(self._client.has_capability(capability))

    async def _run(self, command: Any) -> Any:
        """A command's response, within the deadline; a NO or BAD is an error."""
        if self._lost.is_set():
            raise MailboxError("dropped", "the connection was closed")
        try:
            response = await asyncio.wait_for(command, self._endpoint.timeout)
        except TimeoutError:
            raise MailboxError("timeout", "the server did not answer in time") from None
        except aioimaplib.AioImapException as error:
            raise MailboxError("protocol", str(error)) from None
        except OSError as error:
            raise MailboxError("dropped", f"connection lost: {error}") from None
        if self._lost.is_set() and response is None:
            raise MailboxError("dropped", "the connection was closed")
        if any(b"BYE" in bytes(line)[:8] for line in response.lines if isinstance(line, bytes)):
            self._lost.set()
        return response

    async def _ok(self, command: Any, what: str) -> Any:
        response = await self._run(command)
        if response.result != "OK":
            raise MailboxError("protocol", f"{what} refused: {_text(response)}")
        return response

    async def ensure_folder(self, name: str) -> None:
        """`name` exists (made if it did not)."""
        response = await self._run(self._client.create(name))
        if response.result != "OK" and b"ALREADYEXISTS" not in b" ".join(
            bytes(line) for line in response.lines
        ):
            text = _text(response)
            if "exists" not in text.lower():
                raise MailboxError("protocol", f"cannot create folder: {text}")

    async def select(self, folder: str) -> Selected:
        response = await self._ok(self._client.select(folder), "SELECT")
        uidvalidity, exists = None, 0
        for line in response.lines:
            if not isinstance(line, bytes | bytearray):
                continue
            found = _UIDVALIDITY.search(bytes(line))
            if found:
                uidvalidity = int(found.group(1))
            if line.endswith(b" EXISTS"):
                exists = int(bytes(line).split()[0])
        if uidvalidity is None:
            raise MailboxError("protocol", "SELECT gave no UIDVALIDITY")
        return Selected(uidvalidity, exists)

    async def search(self, *criteria: str) -> list[int]:
        response = await self._ok(self._client.uid_search(*criteria, charset=None), "SEARCH")
        uids: list[int] = []
        for line in response.lines:
            words = bytes(line).split()
            if words[:1] == [b"SEARCH"]:
                words = words[1:]
            if words and all(word.isdigit() for word in words):
                uids.extend(int(word) for word in words)
        return sorted(set(uids))

    async def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        response = await self._ok(self._client.uid("fetch", _set(uids), "(RFC822.SIZE)"), "FETCH")
        sizes = {}
        for line in response.lines:
            data = bytes(line)
            uid, size = _UID.search(data), _SIZE.search(data)
            if uid and size:
                sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    async def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        """Each message's bytes, by UID; BODY.PEEK leaves \\Seen as it was."""
        response = await self._ok(self._client.uid("fetch", _set(uids), "(BODY.PEEK[])"), "FETCH")
        messages: dict[int, bytes] = {}
        uid: int | None = None
        body: bytes | None = None
        for line in response.lines:
            if isinstance(line, bytearray):  # a literal: the message
                body = bytes(line)
                continue
            found = _UID.search(line)
            if _FETCH_START.match(line):
                uid, body = (int(found.group(1)) if found else None), None
            elif found and uid is None:
                uid = int(found.group(1))  # UID after the literal: "BODY[] {n} ... UID 7)"
            if uid is not None and body is not None:
                messages[uid] = body
                uid, body = None, None
        return messages

    async def move(self, uids: Sequence[int], folder: str) -> None:
        """MOVE (RFC 6851) where the server has it, else COPY, \\Deleted and UID EXPUNGE."""
        if not uids:
            return
        message_set = _set(uids)
        if self.has("MOVE"):
            await self._ok(self._client.uid("move", message_set, folder), "MOVE")
            return
        await self._ok(self._client.uid("copy", message_set, folder), "COPY")
        await self._ok(
            self._client.uid("store", message_set, "+FLAGS.SILENT", "(\\Deleted)"), "STORE"
        )
        if self.has("UIDPLUS"):
            await self._ok(self._client.uid("expunge", message_set), "EXPUNGE")
        else:  # expunges every \\Deleted message of the folder: the best IMAP4rev1 allows
            await self._ok(self._client.expunge(), "EXPUNGE")

    async def flag(self, uids: Sequence[int]) -> None:
        if uids:
            await self._ok(
                self._client.uid("store", _set(uids), "+FLAGS.SILENT", f"(\\Seen {TAKEN_KEYWORD})"),
                "STORE",
            )

    async def noop(self) -> None:
        await self._ok(self._client.noop(), "NOOP")

    async def idle(self, seconds: float) -> bool:
        """IDLE (RFC 2177) for up to `seconds`: true once the server reports a change. The
        wait ends with DONE and the server's OK within the deadline, or a MailboxError:
        so a connection that died silently is found at the end of each round."""
        try:
            idle = await asyncio.wait_for(
                self._client.idle_start(seconds + 60), self._endpoint.timeout
            )
        except TimeoutError:
            raise MailboxError("timeout", "IDLE was not answered") from None
        except aioimaplib.AioImapException as error:
            raise MailboxError("protocol", str(error)) from None
        changed = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        try:
            while not changed and not self._lost.is_set():
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    pushed = await self._client.wait_server_push(timeout=left)
                except TimeoutError:
                    break
                lines = pushed if isinstance(pushed, list) else [pushed]
                for line in lines:
                    data = bytes(line) if isinstance(line, bytes | bytearray) else b""
                    if data.endswith((b" EXISTS", b" RECENT")) or b"BYE" in data[:8]:
                        changed = True
                    if b"BYE" in data[:8]:
                        self._lost.set()
        finally:
            if not self._lost.is_set():
                self._client.idle_done()
        if self._lost.is_set():
            raise MailboxError("dropped", "the server closed the connection")
        try:
            await asyncio.wait_for(idle, self._endpoint.timeout)
        except TimeoutError:
            raise MailboxError("timeout", "the server stopped answering inside IDLE") from None
        return changed

    async def close(self) -> None:
        """Log out if the server still answers; the connection is closed either way."""
        # Closing: whatever the server says now changes nothing.
        with contextlib.suppress(Exception):
            if not self._lost.is_set():
                await asyncio.wait_for(self._client.logout(), min(5.0, self._endpoint.timeout))
        transport = self._client.protocol.transport
        if transport is not None:
            transport.close()


def _set(uids: Sequence[int]) -> str:
    return ",".join(str(uid) for uid in uids)
