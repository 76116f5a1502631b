"""A TCP proxy a test can cut (to take PostgreSQL or an IMAP server away), freeze (a server
that stops answering), or have hold what a client sends once it carries a given command
(to stop a client between two steps)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.sink import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._hold: bytes | None = None
        self.held = threading.Event()  # set once something was held
        self._frozen = False

    def freeze(self, frozen: bool = True) -> None:
        """While frozen, nothing goes through either way and no connection is closed: a
        peer that stopped answering (what it sends meanwhile is lost)."""
        self._frozen = frozen

    def hold_when(self, pattern: bytes | None) -> None:
        """From now on, what a client sends that contains `pattern` is kept back, never
        forwarded (None: forward everything again)."""
        self._hold = pattern
        self.held.clear()

    def start(self) -> None:
        self._thread.start()
        self.restore()

    def restore(self) -> None:
        """Accept and forward connections again."""
        self._run(self._listen())

    def cut(self) -> None:
        """Drop every open connection and refuse new ones: the database is 'down'."""
        self._run(self._close())

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _run(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer, from_client=True), self._pipe(up_reader, writer)
        )

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        from_client: bool = False,
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if self._frozen:
                    continue
                if from_client and self._hold is not None and self._hold in data:
                    self.held.set()
                    continue
                writer.write(data)
                await writer.drain()
        writer.close()
        self._writers.discard(writer)


@contextmanager
def tcp_proxy(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(host, port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
