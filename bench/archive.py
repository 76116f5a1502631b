"""The archive log at scale: `python -m bench.archive` (what `make bench-archive` runs).

Builds an archive of --records messages in a fresh database (SQLite in a temporary folder,
or with --database postgresql a fresh schema): one registered pair, each message a small
order notice of its own (its body as received distinct, its body as delivered distinct),
written straight into the archive's tables in batches, with a progress bar. Then it times:

  append and sign   `archive checkpoint` over all of them (the checkpointer's batches of 500)
  verify            `archive verify`: every body decompressed and hashed, every leaf
                    recomputed, the tree rebuilt, the checkpoints' roots and signatures

and prints records per second for each. The exit status is 1 if the archive does not verify.
Results go to bench/results/archive-<UTC time>.json with facts about the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from bench.e2e import DEFAULT_POSTGRES, postgres_schema
from bench.report import machine, save_results
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.signing import new_log_key
from gateway.audit.verify import verify_archive
from gateway.core.clock import SystemClock
from gateway.storage import archive
from gateway.storage.archive_keys import ArchiveKeyStore
from gateway.storage.database import Database
from gateway.storage.migrate import open_database
from gateway.storage.registry import Registry
from gateway.storage.schema import Body, Message, table_of

BATCH = 5000
ALIAS_DOMAIN = "relay.example.test"
_MESSAGES, _BODIES = table_of(Message), table_of(Body)
console = Console()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.archive",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="messages (1,000,000)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-dsn", default=DEFAULT_POSTGRES)
    args = parser.parse_args(argv)
    if args.records < 1:
        parser.error("--records must be at least 1")
    return args


def notice(n: int) -> tuple[bytes, bytes]:
    """Message n as received and as delivered (~600 bytes each)."""
    body = (
        f"Order 113-{n:07d}: your parcel left our warehouse today and should arrive within "
        f"three working days. The courier will ring once; if nobody answers, the parcel "
        f"waits at the nearest pick-up point for seven days.\r\n"
    ).encode()
    received = (
        b"From: owner@sakura-shop.example\r\nTo: k7q2m9x4t8w3r5ya@relay.example.test\r\n"
        b"Subject: Your order %d\r\nMessage-ID: <%d@sakura-shop.example>\r\n\r\n" % (n, n)
    ) + body
    delivered = (
        b'From: "Sakura Shop" <s7q2m9x4t8w3r5ya@relay.example.test>\r\nTo: '
        b"kim@buyer-mail.example\r\nSubject: Your order %d\r\nMessage-ID: "
        b"<%d.gw@relay.example.test>\r\n\r\n" % (n, n)
    ) + body
    return received, delivered


def rows(start: int, count: int, pair_id: int, began: datetime) -> Iterator[dict[str, Any]]:
    for n in range(start, start + count):
        received, delivered = notice(n)
        yield {
            "message": {
                "pair_id": pair_id, "direction": "seller_to_buyer", "session_id": f"{n:012x}",
                "envelope_from": "owner@sakura-shop.example",
                "recipient": "k7q2m9x4t8w3r5ya@relay.example.test",
                "received_at": began + timedelta(milliseconds=n), "verdict": "accepted",
                "smtp_reply": "250 2.0.0 queued", "rule_hits": "", "shadow_hits": "",
                "gateway_message_id": f"<{n}.gw@relay.example.test>",
                "original_message_id": f"<{n}@sakura-shop.example>",
                "received_sha256": hashlib.sha256(received).hexdigest(),
                "delivered_sha256": hashlib.sha256(delivered).hexdigest(),
                "size": len(received), "important": False, "policy_version": "bench",
            },
            "bodies": (received, delivered),
        }  # fmt: skip


def build(database: Database, records: int) -> float:
    registry = Registry(database, ALIAS_DOMAIN, SystemClock())
    seller = registry.add_seller("Sakura Shop", ["owner@sakura-shop.example"])
    buyer, _ = registry.add_buyer("kim@buyer-mail.example")
    pair_id = registry.add_order(seller, buyer, None, None).pair.pair_id
    began, start = datetime.now(UTC), time.perf_counter()
    with Progress(console=console) as bar:
        task = bar.add_task("building the archive", total=records)
        for first in range(0, records, BATCH):
            batch = list(rows(first, min(BATCH, records - first), pair_id, began))
            with database.writing() as connection:
                archive.store_bodies(connection, [d for r in batch for d in r["bodies"]])
                connection.execute(_MESSAGES.insert(), [r["message"] for r in batch])
            bar.advance(task, len(batch))
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    with ExitStack() as stack:
        if args.database == "sqlite":
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bsm-archive-")))
            url = f"sqlite:///{folder / 'archive.db'}"
        else:
            url = stack.enter_context(postgres_schema(args.postgres_dsn))
        database = open_database(url)
        stack.callback(database.dispose)
        built = build(database, args.records)
        key = ArchiveKeyStore(database, SystemClock()).ensure_active(new_log_key)
        start = time.perf_counter()
        run = Checkpointer(database, key, SystemClock()).run_once()
        appended = time.perf_counter() - start
        keys = ArchiveKeyStore(database, SystemClock()).public_keys()
        start = time.perf_counter()
        with Progress(console=console) as bar:
            tasks: dict[str, Any] = {}

            def step(what: str, count: int) -> None:
                if what not in tasks:
                    tasks[what] = bar.add_task(f"verifying {what}", total=None)
                bar.advance(tasks[what], count)

            report = verify_archive(database, keys, step)
        verified = time.perf_counter() - start
    figures = {
        "records": args.records,
        "build_s": round(built, 1),
        "append_and_sign_s": round(appended, 1),
        "verify_s": round(verified, 1),
        "verified": report.ok,
        "problems": report.problems,
        "tree_size": report.tree_size,
        "appended": run.appended,
    }
    console.print(
        f"{args.records:,} records ({args.database}): built in {built:.0f} s; appended and "
        f"signed in {appended:.1f} s ({args.records / appended:,.0f}/s); verified in "
        f"{verified:.1f} s ({args.records / verified:,.0f}/s): "
        f"{'ok' if report.ok else 'FAILED'}"
    )
    for problem in report.problems:
        console.print(f"  {problem}", markup=False)
    took = (datetime.now(UTC) - started).total_seconds()
    path = save_results("archive", started, took, vars(args), machine(), **figures)
    console.print(f"results: {path}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
