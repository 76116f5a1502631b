# ruff: noqa: RUF001  (the Chinese notice uses full-width punctuation)
"""The archive log at scale: `python -m bench.archive` (what `make bench-archive` runs).

Builds an archive of --records messages in a fresh database (SQLite in a temporary folder,
or with --database postgresql a fresh schema): 10,000 pairs of 1,000 sellers, each message
a small order notice of its own in one of eight languages (its body as received distinct,
its body as delivered distinct), one in 20 refused by a rule, spread over two years,
written straight into the archive's tables in batches, with a progress bar. Then it times:

  append and sign   `archive checkpoint` over all of them (the checkpointer's batches of 500)
  index             the search indexer over the whole log
  search            p50 and p95 of each filter of `archive search` alone and of full text,
                    40 different values each
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
from sqlalchemy import select

from bench.e2e import DEFAULT_POSTGRES, postgres_schema
from bench.load import percentile
from bench.report import machine, save_results
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.indexer import Indexer
from gateway.audit.signing import new_log_key
from gateway.audit.verify import verify_archive
from gateway.core.clock import SystemClock
from gateway.core.terms import query_phrases
from gateway.storage import archive
from gateway.storage.archive_keys import ArchiveKeyStore
from gateway.storage.database import Database
from gateway.storage.migrate import open_database
from gateway.storage.schema import Body, Buyer, Message, Order, Pair, Seller, table_of
from gateway.storage.search import SearchQuery, search

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


PAIRS = 10_000  # over SELLERS sellers, each pair with its own buyer and order
SELLERS = 1_000
REFUSED_EVERY = 20  # one message in 20 refused, by one of RULES
RULES = ("content.phone", "content.link", "content.social", "form.emoji")
PRODUCTS = 20_000  # product codes: a rare word, ~50 messages each in a million
SPAN = timedelta(days=730)  # the messages are spread over the retention period
WRITTEN = (
    "your parcel left our warehouse today and should arrive within three working days",
    "您的订单已经发货了，预计三个工作日内送达，请注意查收包裹",
    "ご注文の商品は本日発送しました。到着まで三営業日ほどお待ちください",
    "ваш заказ отправлен сегодня и прибудет в течение трёх рабочих дней",
    "Ihre Bestellung wurde heute versandt und kommt in drei Werktagen an",
    "su pedido salió hoy de nuestro almacén y llegará en tres días hábiles",
    "votre colis a quitté notre entrepôt aujourd'hui, livraison sous trois jours ouvrés",
    "il suo ordine è stato spedito oggi e arriverà entro tre giorni lavorativi",
)


def notice(n: int) -> tuple[bytes, bytes]:
    """Message n as received and as delivered (~600 bytes each): one of eight languages,
    an order number and a product code of its own."""
    text = (
        f"{WRITTEN[n % len(WRITTEN)]}. Order 113-{n:07d}, product SKU{n % PRODUCTS}.\r\n"
        f"The courier will ring once; if nobody answers, the parcel waits at the nearest "
        f"pick-up point for seven days.\r\n"
    ).encode()
    mime = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
    received = (
        b"From: owner@sakura-shop.example\r\nTo: k7q2m9x4t8w3r5ya@relay.example.test\r\n"
        b"Subject: Your order %d\r\nMessage-ID: <%d@sakura-shop.example>\r\n%s\r\n" % (n, n, mime)
    ) + text
    delivered = (
        b'From: "Sakura Shop" <s7q2m9x4t8w3r5ya@relay.example.test>\r\nTo: '
        b"kim@buyer-mail.example\r\nSubject: Your order %d\r\nMessage-ID: "
        b"<%d.gw@relay.example.test>\r\n%s\r\n" % (n, n, mime)
    ) + text
    return received, delivered


def rows(
    start: int, count: int, first_pair: int, began: datetime, step: timedelta
) -> Iterator[dict[str, Any]]:
    for n in range(start, start + count):
        received, delivered = notice(n)
        refused = n % REFUSED_EVERY == 0
        yield {
            "message": {
                "pair_id": first_pair + n % PAIRS,
                "direction": "buyer_to_seller" if n % 3 == 0 else "seller_to_buyer",
                "session_id": f"{n:012x}",
                "envelope_from": "owner@sakura-shop.example",
                "recipient": "k7q2m9x4t8w3r5ya@relay.example.test",
                "received_at": began + step * n,
                "verdict": "refused" if refused else "accepted",
                "smtp_reply": "550 5.7.1 refused" if refused else "250 2.0.0 queued",
                "rule_hits": RULES[n // REFUSED_EVERY % len(RULES)] if refused else "",
                "shadow_hits": "",
                "gateway_message_id": f"<{n}.gw@relay.example.test>",
                "original_message_id": f"<{n}@sakura-shop.example>",
                "received_sha256": hashlib.sha256(received).hexdigest(),
                "delivered_sha256": None if refused else hashlib.sha256(delivered).hexdigest(),
                "size": len(received), "important": False, "policy_version": "bench",
            },
            "bodies": (received,) if refused else (received, delivered),
        }  # fmt: skip


def register(database: Database, now: datetime) -> int:
    """SELLERS sellers and PAIRS pairs, each with a buyer and an order; the first pair id."""
    with database.writing() as connection:
        connection.execute(
            table_of(Seller).insert(),
            [{"name": f"Shop {s}", "status": "active", "created_at": now, "pre_purchase": False}
             for s in range(SELLERS)],
        )  # fmt: skip
        sellers = list(connection.execute(select(Seller.id).order_by(Seller.id)).scalars())
        connection.execute(
            table_of(Buyer).insert(),
            [{"address": f"buyer{p}@buyer-mail.example", "opted_out": False, "created_at": now}
             for p in range(PAIRS)],
        )  # fmt: skip
        buyers = list(connection.execute(select(Buyer.id).order_by(Buyer.id)).scalars())
        connection.execute(
            table_of(Pair).insert(),
            [{"seller_id": sellers[p % SELLERS], "buyer_id": buyers[p],
              "buyer_alias": f"b{p:015d}", "seller_alias": f"s{p:015d}", "created_at": now}
             for p in range(PAIRS)],
        )  # fmt: skip
        pairs = list(connection.execute(select(Pair.id).order_by(Pair.id)).scalars())
        connection.execute(
            table_of(Order).insert(),
            [{"ref": f"302-{p:07d}", "pair_id": pairs[p], "placed_at": now}
             for p in range(PAIRS)],
        )  # fmt: skip
    return pairs[0]


def build(database: Database, records: int, ending: datetime | None = None) -> float:
    """`records` messages received over the SPAN up to `ending` (now)."""
    now = datetime.now(UTC)
    first_pair = register(database, now)
    began, start = (ending or now) - SPAN, time.perf_counter()
    step = SPAN / records
    with Progress(console=console) as bar:
        task = bar.add_task("building the archive", total=records)
        for first in range(0, records, BATCH):
            batch = list(rows(first, min(BATCH, records - first), first_pair, began, step))
            with database.writing() as connection:
                archive.store_bodies(connection, [d for r in batch for d in r["bodies"]])
                connection.execute(_MESSAGES.insert(), [r["message"] for r in batch])
            bar.advance(task, len(batch))
    return time.perf_counter() - start


def index(database: Database, records: int) -> float:
    start = time.perf_counter()
    with Progress(console=console) as bar:
        task = bar.add_task("indexing for search", total=records)
        indexer = Indexer(database)
        done = indexer.run_once(progress=lambda count: bar.advance(task, count))
    assert done == records, f"{done} of {records} indexed"
    return time.perf_counter() - start


def queries(records: int) -> dict[str, list[SearchQuery]]:
    """Each filter alone, and full text, several different values each."""
    picks = [(records * k) // 41 for k in range(1, 41)]  # spread over the archive
    end = datetime.now(UTC)
    words = ("parcel", "发货", "発送", "заказ", "Werktagen", "almacén", "entrepôt", "spedito")
    return {
        "seller": [SearchQuery(seller_id=1 + n % SELLERS) for n in picks],
        "buyer": [SearchQuery(buyer=f"buyer{n % PAIRS}@buyer-mail.example") for n in picks],
        "alias": [SearchQuery(alias=f"s{n % PAIRS:015d}@relay.example.test") for n in picks],
        "pair": [SearchQuery(pair_id=1 + n % PAIRS) for n in picks],
        "order-ref": [SearchQuery(order_ref=f"302-{n % PAIRS:07d}") for n in picks],
        "direction": [SearchQuery(direction="buyer_to_seller", offset=n % 5 * 50) for n in picks],
        "since/until (a day)": [
            SearchQuery(since=end - SPAN * k / 41, until=end - SPAN * k / 41 + timedelta(days=1))
            for k in range(1, 41)
        ],
        "verdict": [SearchQuery(verdict="refused", offset=n % 5 * 50) for n in picks],
        "rule": [SearchQuery(rule=RULES[n % len(RULES)]) for n in picks],
        "text: a rare word": [
            SearchQuery(phrases=tuple(query_phrases(f"SKU{n % PRODUCTS}"))) for n in picks
        ],
        "text: a common word": [
            SearchQuery(phrases=tuple(query_phrases(words[n % len(words)]))) for n in picks
        ],
        "text and seller": [
            SearchQuery(seller_id=1 + n % SELLERS, phrases=tuple(query_phrases("courier")))
            for n in picks
        ],
    }


def search_latencies(database: Database, records: int) -> dict[str, dict[str, float]]:
    """p50 and p95 in milliseconds of each kind of search, as `archive search` runs it."""
    found: dict[str, dict[str, float]] = {}
    for name, asked in queries(records).items():
        times = []
        for query in asked:
            start = time.perf_counter()
            with database.read_connection() as connection:
                search(connection, query)
            times.append((time.perf_counter() - start) * 1000)
        found[name] = {"p50_ms": round(percentile(times, 50) or 0, 1),
                       "p95_ms": round(percentile(times, 95) or 0, 1)}  # fmt: skip
        console.print(f"  {name:<22} p50 {found[name]['p50_ms']:>7.1f} ms   "
                      f"p95 {found[name]['p95_ms']:>7.1f} ms")  # fmt: skip
    return found


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
        indexed = index(database, args.records)
        if database.is_postgresql:
            # The planner's statistics, as autovacuum gathers them on a live archive.
            with database.writing() as connection:
                connection.exec_driver_sql("ANALYZE")
        console.print(f"search over {args.records:,} records ({args.database}):")
        latencies = search_latencies(database, args.records)
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
        "index_s": round(indexed, 1),
        "search": latencies,
        "verify_s": round(verified, 1),
        "verified": report.ok,
        "problems": report.problems,
        "tree_size": report.tree_size,
        "appended": run.appended,
    }
    console.print(
        f"{args.records:,} records ({args.database}): built in {built:.0f} s; appended and "
        f"signed in {appended:.1f} s ({args.records / appended:,.0f}/s); indexed in "
        f"{indexed:.0f} s ({args.records / indexed:,.0f}/s); verified in "
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
