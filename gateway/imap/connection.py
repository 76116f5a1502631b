"""One IMAP connection to a mailbox source, over aioimaplib: connect (implicit TLS, STARTTLS
or plain), log in, select, search, fetch, move or flag, IDLE. Every command has a deadline:
a server that stops answering (inside IDLE too) is a MailboxError, never a hang."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Coroutine, Sequence
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
_PERMANENT = re.compile(rb"\[PERMANENTFLAGS \(([^)]*)\)\]")


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
    keeps_keyword: bool  # PERMANENTFLAGS lets a client set $BsmTaken (or any keyword)


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


def _as_mailbox_error(error: BaseException) -> BaseException:
    """A failure to connect, as the kind the metrics count (others pass through)."""
    if isinstance(error, MailboxError | asyncio.CancelledError):
        return error
    if isinstance(error, TimeoutError | aioimaplib.CommandTimeout):
        return MailboxError("timeout", "the server did not answer in time")
    if isinstance(error, ssl.SSLError):
        return MailboxError("tls", f"TLS failed: {error.reason or error}")
    if isinstance(error, OSError):
        return MailboxError("connect", f"cannot connect: {error.strerror or error}")
    if isinstance(error, aioimaplib.AioImapException):
        return MailboxError("protocol", f"the server refused: {error}")
    return error


def quoted(name: str) -> str:
    """A folder name as an IMAP quoted string (aioimaplib sends arguments as given)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _is_line(line: object) -> bool:
    return isinstance(line, bytes | bytearray)


class MailboxConnection:
    def __init__(self, client: aioimaplib.IMAP4, endpoint: Endpoint) -> None:
        self._client = client
        self._endpoint = endpoint
        self._lost = asyncio.Event()
        self.news = False  # the last SEARCH's response reported new messages

    @classmethod
    async def open(cls, endpoint: Endpoint, password: str) -> MailboxConnection:
        """Connected, TLS as configured, logged in; on any failure the socket is closed."""
        timeout = endpoint.timeout
        connection: MailboxConnection | None = None
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
            client.protocol.conn_lost_cb = connection._connection_lost
            await client.wait_hello_from_server()
            if endpoint.tls == "starttls":
                await connection._starttls()
            response = await client.login(endpoint.user, password)
            if response.result != "OK":
                raise AuthenticationFailed(f"login refused: {_text(response)}")
            # What a server offers may change with the login (RFC 3501 6.2.3); aioimaplib
            # keeps the list it read before.
            await asyncio.wait_for(client.protocol.capability(), timeout)
        except BaseException as error:
            if connection is not None:
                connection._abort()
            raise _as_mailbox_error(error) from None
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

    def _connection_lost(self, error: Exception | None) -> None:
        self._lost.set()

    def _abort(self) -> None:
        transport = self._client.protocol.transport
        if transport is not None:
            transport.close()

    def has(self, capability: str) -> bool:
        return bool(self._client.has_capability(capability))

    async def _run(self, command: Coroutine[Any, Any, Any], deadline: bool = True) -> Any:
        """A command's response, within the deadline (`deadline=False`: a FETCH, whose own
        timer restarts with every piece of data, so that a large message is not cut off
        while it is still coming); a lost connection or no answer is a MailboxError."""
        if self._lost.is_set():
            command.close()
            raise MailboxError("dropped", "the connection was closed")
        try:
            if deadline:
                response = await asyncio.wait_for(command, self._endpoint.timeout)
            else:
                response = await command
        except BaseException as error:
            raise _as_mailbox_error(error) from None
        if any(bytes(line).startswith(b"BYE") for line in response.lines if _is_line(line)):
            self._lost.set()  # said before the server closes: no further command
        return response

    async def _ok(self, command: Coroutine[Any, Any, Any], what: str, deadline: bool = True) -> Any:
        response = await self._run(command, deadline)
        if response.result != "OK":
            if self._lost.is_set():
                raise MailboxError("dropped", f"{what}: the server closed the connection")
            raise MailboxError("protocol", f"{what} refused: {_text(response)}")
        return response

    async def ensure_folder(self, name: str) -> None:
        """`name` exists (made if it did not)."""
        response = await self._run(self._client.create(quoted(name)))
        if response.result != "OK":
            text = _text(response)
            if "ALREADYEXISTS" not in text and "exists" not in text.lower():
                raise MailboxError("protocol", f"cannot create folder: {text}")

    async def select(self, folder: str) -> Selected:
        response = await self._ok(self._client.select(quoted(folder)), "SELECT")
        uidvalidity, keeps = None, False
        for line in response.lines:
            if not _is_line(line):
                continue
            data = bytes(line)
            found = _UIDVALIDITY.search(data)
            if found:
                uidvalidity = int(found.group(1))
            flags = _PERMANENT.search(data)
            if flags:
                kept = flags.group(1).split()
                keeps = b"\\*" in kept or TAKEN_KEYWORD.encode() in kept
        if uidvalidity is None:
            raise MailboxError("protocol", "SELECT gave no UIDVALIDITY")
        return Selected(uidvalidity, keeps)

    async def search(self, *criteria: str) -> list[int]:
        """The UIDs that match. `news` tells afterwards whether the server reported new
        messages meanwhile (an EXISTS in the response: one that came after the search)."""
        response = await self._ok(self._client.uid_search(*criteria, charset=None), "SEARCH")
        uids: list[int] = []
        self.news = False
        for line in response.lines:
            if not _is_line(line):
                continue
            words = bytes(line).split()
            if words[-1:] == [b"EXISTS"]:
                self.news = True
                continue
            if words[:1] == [b"SEARCH"]:
                words = words[1:]
            if words and all(word.isdigit() for word in words):
                uids.extend(int(word) for word in words)
        return sorted(set(uids))

    async def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        response = await self._ok(
            self._client.uid("fetch", _set(uids), "(RFC822.SIZE)"), "FETCH", deadline=False
        )
        sizes = {}
        for line in response.lines:
            if not _is_line(line):
                continue
            data = bytes(line)
            uid, size = _UID.search(data), _SIZE.search(data)
            if uid and size:
                sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    async def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        """Each message's bytes, by UID; BODY.PEEK leaves \\Seen as it was."""
        response = await self._ok(
            self._client.uid("fetch", _set(uids), "(UID BODY.PEEK[])"), "FETCH", deadline=False
        )
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
        """MOVE (RFC 6851) where the server has it, else COPY, \\Deleted and UID EXPUNGE
        (RFC 4315); without UIDPLUS, a plain EXPUNGE."""
        if not uids:
            return
        message_set, target = _set(uids), quoted(folder)
        if self.has("MOVE"):
            await self._ok(self._client.uid("move", message_set, target), "MOVE")
            return
        await self._ok(self._client.uid("copy", message_set, target), "COPY")
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

    async def idle(
        self, seconds: float, interrupt: Coroutine[Any, Any, object] | None = None
    ) -> bool:
        """IDLE (RFC 2177) for up to `seconds`, or until `interrupt` returns: true once the
        server reports a change. It ends with DONE and the server's OK within the deadline,
        so a server that stopped answering is found at the end of each round at the latest
        (aioimaplib would wait on it for ever); a closed connection is found at once."""
        stop = asyncio.ensure_future(interrupt) if interrupt is not None else None
        try:
            idle = await asyncio.wait_for(
                self._client.idle_start(seconds + 60), self._endpoint.timeout
            )
        except BaseException as error:
            if stop is not None:
                stop.cancel()
            raise _as_mailbox_error(error) from None
        changed = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        lost = asyncio.ensure_future(self._lost.wait())
        ends = {lost} | ({stop} if stop is not None else set())
        try:
            while not changed and not self._lost.is_set():
                left = deadline - loop.time()
                if left <= 0 or (stop is not None and stop.done()):
                    break
                pushed = asyncio.ensure_future(self._client.protocol.idle_queue.get())
                done, _ = await asyncio.wait(
                    {pushed} | ends, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                if pushed not in done:
                    pushed.cancel()
                    continue
                lines = pushed.result()
                for line in lines if isinstance(lines, list) else [lines]:
                    data = bytes(line) if _is_line(line) else b""
                    if data.endswith((b" EXISTS", b" RECENT")):
                        changed = True
                    if data.startswith(b"BYE"):
                        self._lost.set()
        finally:
            lost.cancel()
            if stop is not None:
                stop.cancel()
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
        self._abort()


def _set(uids: Sequence[int]) -> str:
    return ",".join(str(uid) for uid in uids)
