"""Memory under large messages: `--sessions` (200) SMTP sessions each send one message of
`--size-mb` (25) MB at the same moment to `bsm-gateway serve` (SQLite, delivering to the bare
sink), and the gateway's peak RSS (VmHWM summed over its processes, sampled every 0.2 s)
is reported with the time until every message was delivered.

Each message is a short text and a base64 attachment of random bytes, written by a minimal
client in 64 KiB pieces from one shared body (the bench itself holds one copy, not 200).
`--compare` runs it a second time with the text kept in memory and no budget (spool_after
and processing_budget set past the whole load), to show what spooling saves; keep that one
small (it holds everything at once).

    .venv/bin/python -m bench.memory [--sessions 200] [--size-mb 25] [--compare]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import random
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench.e2e import Harness, console, gateway_command, register
from bench.procs import free_port
from bench.proctree import tree_peak_rss_mib, tree_pids, tree_rss_mib
from bench.scaling_server import ServedGateway
from bench.sink import clock
from bench.targets import GatewaySetup, gateway_config

PIECE = 64 * 1024
UNBOUNDED = {"spool_after": str(1 << 40), "processing_budget": str(1 << 40)}


@dataclass(frozen=True, slots=True)
class Result:
    label: str
    sessions: int
    size_mb: float
    accepted: int
    delivered: int
    seconds: float
    rss_before_mib: float | None
    peak_rss_mib: float | None


def _hwm_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _body(size: int) -> bytes:
    """A message body of about `size` bytes: text, then a base64 JPEG (a small picture with
    random bytes after its end, which viewers ignore; no line starts with a dot, so nothing
    needs stuffing)."""
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(picture, "JPEG")
    raw = picture.getvalue() + random.Random(1).randbytes(size * 3 // 4)
    encoded = base64.encodebytes(raw)
    return (
        b'Content-Type: multipart/mixed; boundary="b"\r\nMIME-Version: 1.0\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nThe photos of your order.\r\n"
        b'--b\r\nContent-Type: image/jpeg; name="photos.jpg"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + encoded.replace(b"\n", b"\r\n")
        + b"--b--\r\n"
    )


async def _send(port: int, sender: str, rcpt: str, n: int, body: bytes) -> bool:
    """One session: the envelope, then the message in pieces; whether it got a 250."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)

    async def reply() -> bytes:
        lines = []
        while True:
            line = await reader.readline()
            lines.append(line.strip())
            if line[3:4] != b"-":
                return b" / ".join(lines)

    try:
        await reply()
        for command in (
            b"EHLO bench.example",
            f"MAIL FROM:<{sender}> SIZE={len(body) + 200}".encode(),
            f"RCPT TO:<{rcpt}>".encode(),
            b"DATA",
        ):
            writer.write(command + b"\r\n")
            await writer.drain()
            answer = await reply()
            if answer[:1] not in (b"2", b"3"):
                raise RuntimeError(answer.decode(errors="replace").strip())
        head = f"From: {sender}\r\nTo: {rcpt}\r\nSubject: photos [bench:{n}]\r\n".encode()
        writer.write(head)
        for start in range(0, len(body), PIECE):
            writer.write(body[start : start + PIECE])
            await writer.drain()
        writer.write(b".\r\n")
        await writer.drain()
        final = await asyncio.wait_for(reply(), 1200)
        writer.write(b"QUIT\r\n")
        if not final.startswith(b"250"):
            raise RuntimeError(final.decode(errors="replace").strip())
        return True
    finally:
        writer.close()


def _policy_taking(folder: Path, size: int) -> Path:
    """The shipped content policy with attachments up to `size` bytes (it allows 10 MiB):
    the messages are delivered, not refused, so the whole way is measured."""
    shipped = Path(__file__).resolve().parent.parent / "config"
    text = (shipped / "policy.toml").read_text("utf-8")
    policy = folder / "policy" / "policy.toml"
    policy.parent.mkdir()
    policy.write_text(text.replace("max_total_bytes = 10485760", f"max_total_bytes = {size}"))
    for beside in ("lexicon", "classifier"):
        (policy.parent / beside).symlink_to(shipped / beside)
    return policy


async def one_run(label: str, sessions: int, size_mb: float, smtp: dict[str, str]) -> Result:
    with tempfile.TemporaryDirectory(prefix="bsm-bench-memory-") as folder:
        async with AsyncExitStack() as stack:
            harness = Harness(stack, Path(folder))
            policy = _policy_taking(Path(folder), int(size_mb * 2_000_000))
            gateway = await _start(harness, sessions, policy, smtp)
            return await _measured(harness, gateway, label, sessions, size_mb)


async def _start(
    harness: Harness, sessions: int, policy: Path, smtp: dict[str, str]
) -> ServedGateway:
    """bench.scaling_server.start_gateway, with the policy and [smtp] keys of this run."""
    _, sink_port, arrivals = await harness.sink("sink")
    url = f"sqlite:///{harness.workdir / 'gateway.db'}"
    setup = GatewaySetup(
        most_messages=1, processes=None, postgres_dsn="", most_sessions=sessions + 10
    )
    smtp_port = free_port()
    text = gateway_config(url, smtp_port, sink_port, setup)
    extra = "".join(f"{key} = {value}\n" for key, value in smtp.items())
    text = text.replace("[smtp]\n", f"[smtp]\n{extra}", 1)
    text = text.replace("[rules]\n", f"[rules]\ncontent_policy = {json.dumps(str(policy))}\n", 1)
    config = harness.workdir / "gateway.toml"
    config.write_text(text, "utf-8")
    command = [gateway_command(), "--config", str(config)]
    routes = await register(command, 1)
    child = await harness.spawn("gateway", [*command, "serve"], smtp_port)
    return ServedGateway(child, smtp_port, routes, arrivals.path, url)


async def _measured(
    harness: Harness, gateway: ServedGateway, label: str, sessions: int, size_mb: float
) -> Result:
    before = tree_rss_mib(gateway.pid)
    body = _body(int(size_mb * 1_000_000))
    route = gateway.routes[0]
    harness.step(f"{label}: {sessions} sessions x {size_mb:g} MB at once")
    began = clock()
    peak: list[float] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            value = tree_peak_rss_mib(gateway.pid)
            if value is not None:
                peak.append(value)
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch())
    sent = await asyncio.gather(
        *(_send(gateway.port, route.mail_from, route.rcpt, n, body) for n in range(sessions)),
        return_exceptions=True,
    )
    accepted = sum(1 for ok in sent if ok is True)
    problems = {repr(ok) for ok in sent if ok is not True}
    if problems:
        harness.step(f"not accepted: {sorted(problems)[:3]}")
    for _ in range(3600):  # half an hour at most
        if not await gateway.queued():
            break
        await asyncio.sleep(0.5)
    seconds = clock() - began
    done.set()
    await watcher
    for pid in tree_pids(gateway.pid):
        harness.step(f"process {pid}: peak {_hwm_mib(pid):.0f} MiB")
    arrivals = gateway.arrivals_path
    delivered = sum(1 for _ in arrivals.open()) if arrivals.exists() else 0
    await gateway.stop()
    return Result(
        label, sessions, size_mb, accepted, delivered, seconds, before, max(peak, default=None)
    )


async def run(options: argparse.Namespace) -> int:
    spooled = {}
    if options.budget_mb:
        spooled["processing_budget"] = str(int(options.budget_mb * 1024 * 1024))
    results = [await one_run("spooled", options.sessions, options.size_mb, spooled)]
    if options.compare:
        results.append(await one_run("in memory", options.sessions, options.size_mb, UNBOUNDED))
    console.print(
        "| run | sessions x MB | accepted | delivered | seconds | RSS before MiB | peak RSS MiB |"
    )
    console.print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        console.print(
            f"| {r.label} | {r.sessions} x {r.size_mb:g} | {r.accepted} | {r.delivered} | "
            f"{r.seconds:.0f} | {r.rss_before_mib or 0:.0f} | {r.peak_rss_mib or 0:.0f} |",
            highlight=False,
        )
    return 0 if all(r.accepted == r.sessions == r.delivered for r in results) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--size-mb", type=float, default=25.0)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument(
        "--budget-mb", type=float, default=0, help="[smtp] processing_budget (default: as shipped)"
    )
    raise SystemExit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
