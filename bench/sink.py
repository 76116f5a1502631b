"""A bare SMTP sink: accepts every message, keeps only its arrival time, discards the rest.

Run as `python -m bench.sink --port N --arrivals FILE`. Each message appends one line
"TOKEN SECONDS" to FILE: TOKEN from the `[bench:N]` tag in its Subject (the one part of a
message the gateway passes through unchanged), SECONDS from `clock()`. The parent reads
the file to learn when each message arrived and subtracts its own send-start times.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import time
from pathlib import Path
from typing import Any, TextIO

from aiosmtpd.smtp import SMTP

TOKEN = re.compile(rb"\[bench:(\d+)\]")
UNTAGGED = -1  # written for a message without a tag, so the parent can count them


def clock() -> float:
    """Seconds on CLOCK_MONOTONIC: one clock for every process on Linux, so the sink's
    arrival times and the parent's send times can be subtracted."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class ArrivalRecorder:
    """aiosmtpd handler: 250 for every message, one line per message in `arrivals`."""

    def __init__(self, arrivals: TextIO) -> None:
        self._arrivals = arrivals

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        arrived = clock()
        match = TOKEN.search(envelope.content)
        token = int(match.group(1)) if match else UNTAGGED
        # Line-buffered: the parent sees each arrival as soon as it is written.
        self._arrivals.write(f"{token} {arrived:.6f}\n")
        return "250 2.0.0 OK"


async def serve(port: int, arrivals_path: Path) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with arrivals_path.open("a", buffering=1, encoding="ascii") as arrivals:
        handler = ArrivalRecorder(arrivals)
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.bench.test", decode_data=False, loop=loop),
            "127.0.0.1",
            port,
        )
        await stop.wait()
        server.close()
        await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--arrivals", type=Path, required=True, help="file to append to")
    args = parser.parse_args()
    # aiosmtpd logs every command at debug/info level: that would cost more than the sink.
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.port, args.arrivals))


if __name__ == "__main__":
    main()
