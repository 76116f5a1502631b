"""The DATA text as the SMTP adapter reads it (gateway.smtp.data): whatever the bytes and
however they arrive, what aiosmtpd's line-by-line reading would take (lines end only at
CRLF; the data ends at the first line that is a single dot; a dot that starts a line is
taken off), and not one byte more: a command pipelined after the data stays unread."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from gateway.smtp.data import DataText, Problem, read_data
from gateway.smtp.spool import Spool

NEXT_COMMAND = b"QUIT\r\n"
PIECES = (b"a", b"Hello", b".", b"..", b"\r\n", b"\r", b"\n", b"\r\n.", b".\r\n", b" ", b"x" * 30)


def aiosmtpd_reads(stream: bytes, size_limit: int, line_limit: int) -> tuple[DataText, bytes]:
    """What aiosmtpd's loop takes from `stream`, and what it leaves unread."""
    lines, position, size, problem = [], 0, 0, None
    while True:
        end = stream.find(b"\r\n", position)
        if end < 0:
            raise AssertionError("the stream has no end of data")
        line = stream[position : end + 2]
        position = end + 2
        if line == b".\r\n":
            break
        size += len(line)
        if problem is None and size_limit and size > size_limit:
            problem = Problem.TOO_MUCH_DATA
        if problem is None and len(line) > line_limit:
            problem = Problem.LINE_TOO_LONG
        if problem is None:
            lines.append(line[1:] if line.startswith(b".") else line)
    text = DataText(problem=problem) if problem else DataText(b"".join(lines))
    return text, stream[position:]


async def read(
    stream: bytes, size_limit: int, line_limit: int, seed: int
) -> tuple[DataText, bytes]:
    """read_data over `stream` arriving in random slices; and what it left unread."""
    reader = asyncio.StreamReader(limit=line_limit)
    rng = random.Random(seed)

    async def arrive() -> None:
        position = 0
        while position < len(stream):
            step = rng.randint(1, 40)
            reader.feed_data(stream[position : position + step])
            position += step
            await asyncio.sleep(0)
        reader.feed_eof()

    feeding = asyncio.create_task(arrive())
    text = await read_data(reader, size_limit, line_limit)
    await feeding
    return text, await reader.read()


def random_data(seed: int) -> bytes:
    rng = random.Random(seed)
    return b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 60))) + b"\r\n.\r\n"


@pytest.mark.parametrize("seed", range(400))
async def test_read_as_aiosmtpd_reads(seed: int) -> None:
    stream = random_data(seed) + NEXT_COMMAND
    for size_limit, line_limit in ((0, 64 * 1024), (120, 64 * 1024), (0, 48)):
        expected = aiosmtpd_reads(stream, size_limit, line_limit)
        assert await read(stream, size_limit, line_limit, seed) == expected, (
            size_limit,
            line_limit,
            stream,
        )


@pytest.mark.parametrize(
    "data",
    [
        b".\r\n",  # an empty message
        b"\r\n.\r\n",  # one empty line
        b"..\r\n.\r\n",  # a line that is a dot, stuffed
        b"a\n.\nb\r\n.\r\n",  # bare LF around a dot: not the end
        b"a\r.\rb\r\n.\r\n",  # bare CR likewise
        b"Subject: x\r\n\r\nbody.\r\n..hidden\r\n.\r\n",
        b"A" * 70_000 + b"\r\nend.\r\n.\r\n",  # past the buffer without a dotted line
    ],
)
async def test_edges(data: bytes) -> None:
    stream = data + NEXT_COMMAND
    for line_limit in (64 * 1024, 100_000):
        expected = aiosmtpd_reads(stream, 0, line_limit)
        assert await read(stream, 0, line_limit, 7) == expected


@pytest.mark.parametrize("seed", range(200))
async def test_spooled_to_disk_the_text_is_the_same(seed: int, tmp_path: Path) -> None:
    """Spooled after 16 bytes, the text read back is the one read into memory."""
    stream = random_data(seed) + b"B" * 70_000 + b"\r\n..x\r\n.\r\n" + NEXT_COMMAND
    expected, rest = aiosmtpd_reads(stream, 0, 100_000)
    reader = asyncio.StreamReader(limit=64 * 1024)
    reader.feed_data(stream)
    reader.feed_eof()
    spool = Spool(tmp_path, in_memory=16)
    text = await read_data(reader, 0, 100_000, spool)
    assert text == DataText() and spool.on_disk == (len(expected.content) > 16)
    assert spool.read() == expected.content and spool.size == len(expected.content)
    assert await reader.read() == rest
    spool.close()
    assert list(tmp_path.iterdir()) == []  # unlinked from the start: nothing to clean up
