"""The message smtp-source sends: the load's order notice (bench/load.py) for one route, as a
file for its -F option.

It is the seller's message that the gateway accepts: From is the seller's registered mailbox,
To the buyer's alias, and the text keeps to the content policy. Every copy is the same
(smtp-source sends the file as it is); the gateway replaces Message-ID, so the repeated one
does not matter. smtp-source ends each line with CRLF itself, so the file has bare LFs.
"""

from __future__ import annotations

from pathlib import Path

from bench.load import Route, message_bytes, template


def sized_template(route: Route, size: int | None) -> bytes:
    """The order notice with as many care notes as bring it closest to `size` bytes (as
    sent, CRLF line ends); None: the notice as bench/load.py sends it (~5 KB)."""
    if size is None:
        return template(route)
    high = 1  # doubled until it reaches `size`, then halved down to the fewest that do
    while len(template(route, high)) < size:
        high *= 2
    low = high // 2
    while low < high:
        middle = (low + high) // 2
        if len(template(route, middle)) < size:
            low = middle + 1
        else:
            high = middle
    candidates = [template(route, notes) for notes in {max(low - 1, 0), low}]
    return min(candidates, key=lambda message: abs(len(message) - size))


def write_message_file(path: Path, route: Route, size: int | None) -> int:
    """Write the message for smtp-source's -F; its size in bytes as sent."""
    message = message_bytes(0, sized_template(route, size))
    path.write_bytes(message.replace(b"\r\n", b"\n"))
    return len(message)
