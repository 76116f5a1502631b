"""A large message on the wire: past [smtp] spool_after its text waits in an unlinked file
in spool_folder while it arrives (seen open under /proc while the client pauses halfway),
and it is delivered byte for byte as sent."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
import time
from pathlib import Path

from tests.support.gateway import running_gateway, wait_for
from tests.support.mail import read, send, text_message

SIZE = 3_000_000


def _spooled_files(folder: Path) -> list[str]:
    """This process's open files in `folder` (the gateway runs in a thread of the test)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def _reply(conversation: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n") or data.splitlines()[-1][3:4] == b"-":
        data += conversation.recv(65536)
    return data


def test_a_large_message_is_spooled_while_it_arrives_and_delivered_as_sent(
    tmp_path: Path, db_url: str
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    config = f'spool_after = 65536\nspool_folder = "{spool}"'
    with running_gateway(tmp_path, db_url, smtp_config=config) as gw:
        parties = gw.register()
        attachment = base64.encodebytes(random.Random(3).randbytes(SIZE)).replace(b"\n", b"\r\n")
        message = (
            (
                f"From: {parties.seller_mailbox}\r\nTo: {parties.buyer_alias}\r\n"
                "Subject: the manual\r\nMIME-Version: 1.0\r\n"
                'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
                "--b\r\nContent-Type: text/plain\r\n\r\nThe manual is attached.\r\n"
                '--b\r\nContent-Type: application/pdf; name="manual.pdf"\r\n'
                "Content-Transfer-Encoding: base64\r\n\r\n"
            ).encode()
            + attachment
            + b"--b--\r\n"
        )
        half = len(message) // 2
        with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as conversation:
            _reply(conversation)
            for command in (
                b"EHLO client.example",
                f"MAIL FROM:<{parties.seller_mailbox}>".encode(),
                f"RCPT TO:<{parties.buyer_alias}>".encode(),
                b"DATA",
            ):
                conversation.sendall(command + b"\r\n")
                assert _reply(conversation)[:1] in (b"2", b"3")
            conversation.sendall(message[:half])
            held = wait_for(lambda: _spooled_files(spool), timeout=10)
            assert all(target.endswith("(deleted)") for target in held)
            conversation.sendall(message[half:] + b".\r\n")
            assert _reply(conversation).startswith(b"250 ")
        assert _spooled_files(spool) == []
        [path] = gw.delivered(1)
        delivered = read(path)
        [pdf] = [p for p in delivered.walk() if p.get_content_type() == "application/pdf"]
        assert pdf.get_payload(decode=True) == random.Random(3).randbytes(SIZE)


def test_a_sender_waiting_its_turn_for_the_budget_gets_its_reply_not_an_idle_421(
    tmp_path: Path, db_url: str
) -> None:
    """The budget is held (by the test, for six seconds) while a message ends, and the
    idle timeout is two seconds: the sender waits and gets its 250."""
    with running_gateway(tmp_path, db_url, smtp_config="idle_timeout = 2") as gw:
        parties = gw.register()
        budget = gw.gateway.handler.budget

        async def occupy() -> None:
            async with budget.hold(1 << 62):
                await asyncio.sleep(6)

        occupied = asyncio.run_coroutine_threadsafe(occupy(), gw.loop)
        message = text_message(sender=parties.seller_mailbox, to=parties.buyer_alias)
        started = time.monotonic()
        assert send(gw.port, parties.seller_mailbox, [parties.buyer_alias], message) == {}
        assert time.monotonic() - started >= 5.5  # it did wait for the budget
        occupied.result(10)
        assert len(gw.delivered(1)) == 1
