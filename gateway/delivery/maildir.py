"""Delivery into a Maildir: the embedded default, one file per delivery.

The file is named after the delivery's unique token, so a delivery repeated after a crash
(between the rename and the database update) finds its file and is not written twice.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gateway.delivery.transport import Outcome, SendResult
from gateway.storage.queue import ClaimedDelivery


class MaildirTransport:
    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        return await asyncio.to_thread(self._write, delivery)

    async def close(self) -> None:
        """Nothing is held open between deliveries."""

    def file_name(self, delivery: ClaimedDelivery) -> str:
        return f"{delivery.token}.bsm-gateway"

    def _write(self, delivery: ClaimedDelivery) -> SendResult:
        name = self.file_name(delivery)
        if (self.root / "new" / name).exists() or any((self.root / "cur").glob(f"{name}*")):
            return SendResult(Outcome.DELIVERED, "already in the maildir")
        envelope = (
            f"Return-Path: <{delivery.envelope_from}>\r\nDelivered-To: {delivery.recipient}\r\n"
        ).encode()
        # Maildir files use the local line ending.
        data = (envelope + delivery.content).replace(b"\r\n", b"\n")
        temporary = self.root / "tmp" / f"{name}.{os.getpid()}"
        try:
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.root / "new" / name)
            _fsync_directory(self.root / "new")
        except OSError as error:
            temporary.unlink(missing_ok=True)
            return SendResult(Outcome.TRANSIENT, f"4.3.0 maildir write failed: {error.strerror}")
        return SendResult(Outcome.DELIVERED, "written to maildir")


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
