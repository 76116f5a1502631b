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

DOT_LINE_END = b".\r\n"  # the end of a line ending in a dot; the last line is only that
LAST = b"\r\n.\r\n"


class Problem(Enum):
    LINE_TOO_LONG = "line"
    TOO_MUCH_DATA = "size"


@dataclass(frozen=True, slots=True)
class DataText:
    content: bytes = b""
    problem: Problem | None = None  # the data was read to its end, and is refused


async def read_data(reader: asyncio.StreamReader, size_limit: int, line_limit: int) -> DataText:
    """The message text after `354`, read to its end whatever happens (RFC 5321 4.2.5: the
    reply comes after the data)."""
    pieces: list[bytes] = []
    size = 0
    problem: Problem | None = None
    while True:
        try:
            piece = await reader.readuntil(DOT_LINE_END)
        except asyncio.LimitOverrunError:
            rest = await _read_lines(reader, size_limit - size if size_limit else 0, line_limit)
            if problem is None and rest.problem is not None:
                problem = rest.problem
            pieces.append(rest.content)
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
            pieces.append(piece)
        if last:
            break
    if problem is not None:
        return DataText(problem=problem)
    text = b"".join(pieces)
    if text.startswith(b"."):
        text = text[1:]
    return DataText(text.replace(b"\r\n.", b"\r\n"))


def _longest_line(piece: bytes) -> int:
    """The longest CRLF-ended line of `piece`, its CRLF counted."""
    return max(len(line) + 2 for line in piece.split(b"\r\n"))


async def _read_lines(reader: asyncio.StreamReader, size_limit: int, line_limit: int) -> DataText:
    """The rest of the data, line by line, as aiosmtpd reads it (its lines not unstuffed:
    read_data does that for the whole text)."""
    lines: list[bytes] = []
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
            if problem is None:
                lines.append(whole)
    if problem is not None:
        return DataText(problem=problem)
    return DataText(b"".join(lines))
