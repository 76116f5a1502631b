"""Reading the text of a DATA command (RFC 5321 4.1.1.4, 4.5.2): up to the line that is a
single dot, with the dot that starts a line taken off again.

aiosmtpd reads it line by line, one await per line. Here it is read in pieces that each end
at a line ending in a dot: only there can the data end, so a piece is either the last one or
ends where a line ends, and the next piece begins a line. A stretch without such a line
longer than the stream's buffer (the line length limit, 64 KiB: base64 attachments) is read
line by line, as aiosmtpd does. Only CRLF ends a line either way: a bare LF or CR never ends
the data, so no second message can be smuggled behind one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum

from gateway.smtp.spool import Spool

DOT_LINE_END = b".\r\n"  # the end of a line ending in a dot; the last line is only that
LAST = b"\r\n.\r\n"


class Problem(Enum):
    LINE_TOO_LONG = "line"
    TOO_MUCH_DATA = "size"


@dataclass(frozen=True, slots=True)
class DataText:
    content: bytes = b""  # the text, unless it went to a spool (then read from there)
    problem: Problem | None = None  # the data was read to its end, and is refused


async def read_data(
    reader: asyncio.StreamReader, size_limit: int, line_limit: int, spool: Spool | None = None
) -> DataText:
    """The message text after `354`, read to its end whatever happens (RFC 5321 4.2.5: the
    reply comes after the data). With `spool`, the text goes there as it arrives, each
    piece with its dots taken off (a piece begins a line), and `content` stays empty."""
    into = spool if spool is not None else Spool(None, 0)
    size = 0
    problem: Problem | None = None
    while True:
        try:
            piece = await reader.readuntil(DOT_LINE_END)
        except asyncio.LimitOverrunError:
            left = size_limit - size if size_limit else 0
            rest = await _read_lines(reader, left, line_limit, into if problem is None else None)
            if problem is None and rest.problem is not None:
                problem = rest.problem
            break
        last = piece == DOT_LINE_END or piece.endswith(LAST)
        if last:
            piece = piece[: -len(DOT_LINE_END)]
        size += len(piece)
        if problem is None and size_limit and size > size_limit:
            problem = Problem.TOO_MUCH_DATA
        # The buffer's limit bounds where the separator starts, so a piece may run a few
        # bytes past it: only then can one of its lines be too long.
        if problem is None and len(piece) > line_limit and _longest_line(piece) > line_limit:
            problem = Problem.LINE_TOO_LONG
        if problem is None:
            into.write(_unstuffed(piece))
        if last:
            break
    if problem is not None:
        into.close()
        return DataText(problem=problem)
    return DataText() if spool is not None else DataText(into.read())


def _unstuffed(piece: bytes) -> bytes:
    """A piece that begins a line, with the dot taken off each of its lines that starts
    with one (RFC 5321 4.5.2)."""
    if piece.startswith(b"."):
        piece = piece[1:]
    return piece.replace(b"\r\n.", b"\r\n")


def _longest_line(piece: bytes) -> int:
    """The longest CRLF-ended line of `piece`, its CRLF counted."""
    return max(len(line) + 2 for line in piece.split(b"\r\n"))


async def _read_lines(
    reader: asyncio.StreamReader, size_limit: int, line_limit: int, into: Spool | None
) -> DataText:
    """The rest of the data, line by line, as aiosmtpd reads it, each line unstuffed into
    `into` (None: read to the end and dropped)."""
    fragments: list[bytes] = []
    size = 0
    problem: Problem | None = None
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as overrun:
            # A line longer than the stream's buffer: read on, refuse once the data ends.
            problem = problem or Problem.LINE_TOO_LONG
            line = await reader.read(overrun.consumed)
        if not fragments and line == DOT_LINE_END:
            break
        size += len(line)
        if problem is None and size_limit and size > size_limit:
            problem = Problem.TOO_MUCH_DATA
        fragments.append(line)
        if line.endswith(b"\r\n"):
            whole = b"".join(fragments)
            fragments.clear()
            if problem is None and len(whole) > line_limit:
                problem = Problem.LINE_TOO_LONG
            if problem is None and into is not None:
                into.write(whole[1:] if whole.startswith(b".") else whole)
    return DataText(problem=problem)
