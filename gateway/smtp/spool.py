"""A message's text while it arrives and waits, and the bytes being taken in at once.

Small messages stay in memory. Past `in_memory` bytes the text goes to an unlinked
temporary file in the spool folder (nothing is left behind if the process dies), so that
two hundred sessions sending 25 MB each hold megabytes, not gigabytes. Once the data has
ended, a message is read back only when the process's budget of bytes in processing has
room for it (`ByteBudget`): parsing, judging and rewriting a message takes a few times its
size, and the budget bounds that sum; the other senders wait for their reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO


class Spool:
    def __init__(self, folder: Path | None, in_memory: int) -> None:
        self._folder = folder
        self._in_memory = in_memory
        self._pieces: list[bytes] = []
        self._file: BinaryIO | None = None
        self.size = 0

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def write(self, piece: bytes) -> None:
        self.size += len(piece)
        if self._file is not None:
            self._file.write(piece)
            return
        self._pieces.append(piece)
        if self._folder is not None and self.size > self._in_memory:
            self._file = tempfile.TemporaryFile(dir=self._folder, prefix="data-")  # noqa: SIM115
            for held in self._pieces:
                self._file.write(held)
            self._pieces = []

    def read(self) -> bytes:
        """The whole text (read back from disk if it was spooled)."""
        if self._file is None:
            return b"".join(self._pieces)
        self._file.flush()
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        self._pieces = []
        if self._file is not None:
            self._file.close()
            self._file = None


class ByteBudget:
    """At most `limit` bytes of messages taken in at once; a message larger than the whole
    budget waits until it is alone."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._room = asyncio.Condition()
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        async with self._room:
            self.waiting += 1
            try:
                await self._room.wait_for(
                    lambda: self._used == 0 or self._used + size <= self._limit
                )
            finally:
                self.waiting -= 1
            self._used += size
        try:
            yield
        finally:
            async with self._room:
                self._used -= size
                self._room.notify_all()
