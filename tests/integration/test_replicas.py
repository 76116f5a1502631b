"""Three `serve` replicas on one PostgreSQL, as a deployment behind a TCP load balancer (or
MX records of equal preference) runs them: orders made through all of them at once, clients
spread over all three, an IMAP source configured on all three, and the replica polling it
killed with SIGKILL in the middle of the load. Every 250 is delivered exactly once, the
day's quota is exact, each seller and buyer has one pair with aliases of its own, the
mailbox is polled by one replica at a time and each of its messages taken in once, and the
archive log verifies whole."""

from __future__ import annotations

import os
import random
import signal
import smtplib
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.test_imap import envelope_headers, imap_config
from tests.integration.test_imap_process import count
from tests.support.archive import seller_day
from tests.support.databases import postgres_schema
from tests.support.dovecot import CATCHALL, Dovecot, running_dovecot
from tests.support.gateway import wait_for
from tests.support.mail import read, text_message, wire_bytes
from tests.support.process import (
    Serve,
    clean_env,
    cli_json,
    json_log_lines,
    process_config,
    reserve_port,
)

REPLICAS = 3
CLIENTS = 6
BUYERS = 12
QUOTA = 240  # the seller's day: what the load must reach, across the replicas
MESSAGES = 420
SELLER = "owner@sakura-shop.example"
MAILBOX_SELLER = "desk@hinata-goods.example"  # writes through the IMAP source: its own quota
IMAP_MESSAGES = (30, 10)  # put in the mailbox before the load, and after the kill
# The mailbox's lease: long enough that a renewal late under this load does not let a second
# replica in while the holder lives, short enough for a quick takeover after the kill.
LEASE = 15


def _orders_at_once(config: Path, seller_id: int) -> dict[int, set[tuple[int, str, str]]]:
    """Each buyer's order made three times at once, as three replicas' admin APIs would:
    (pair id, buyer alias, seller alias) by buyer."""
    buyers = [
        cli_json(config, "buyer", "add", f"buyer{n}@mail.example")["buyer_id"]
        for n in range(BUYERS)
    ]

    def order(buyer_id: int) -> tuple[int, tuple[int, str, str]]:
        made = cli_json(
            config, "order", "add", "--seller", str(seller_id), "--buyer", str(buyer_id)
        )
        return buyer_id, (made["pair_id"], made["buyer_alias"], made["seller_alias"])

    pairs: dict[int, set[tuple[int, str, str]]] = {b: set() for b in buyers}
    with ThreadPoolExecutor(max_workers=REPLICAS * 2) as pool:
        for buyer_id, pair in pool.map(order, [b for b in buyers for _ in range(REPLICAS)]):
            pairs[buyer_id].add(pair)
    return pairs


class Load:
    """Clients sending to the replicas in turn; a refused connection is a failed send."""

    def __init__(self, ports: list[int], aliases: list[str]) -> None:
        self.ports = ports
        self.aliases = aliases
        self.codes: dict[str, int] = {}
        self._lock = threading.Lock()

    def send(self, number: int) -> int:
        subject = f"replica load {number}"
        port = self.ports[number % len(self.ports)]
        alias = random.Random(number).choice(self.aliases)
        message = wire_bytes(text_message(sender=SELLER, to=alias, subject=subject))
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.ehlo()
                client.mail(SELLER)
                code, _ = client.rcpt(alias)
                if code == 250:
                    code = client.data(message)[0]
        except (smtplib.SMTPException, OSError):
            code = 0
        with self._lock:
            self.codes[subject] = code
        return code

    def run(self, count: int) -> None:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            list(pool.map(self.send, range(count)))


def _delivered(maildir: Path) -> Counter[str]:
    folders = [maildir / "new", maildir / "cur"]
    return Counter(str(read(p)["Subject"]) for f in folders if f.is_dir() for p in f.iterdir())


def _mailbox_pair(config: Path) -> str:
    """A second seller, who writes through the IMAP source: its buyer's alias."""
    seller = cli_json(config, "seller", "add", "Hinata Goods", "--mailbox", MAILBOX_SELLER)
    buyer = cli_json(config, "buyer", "add", "imap-buyer@mail.example")
    made = cli_json(
        config,
        "order",
        "add",
        "--seller",
        str(seller["seller_id"]),
        "--buyer",
        str(buyer["buyer_id"]),
    )
    return str(made["buyer_alias"])


def _put_in_mailbox(dovecot: Dovecot, alias: str, numbers: range) -> None:
    for number in numbers:
        message = text_message(sender=MAILBOX_SELLER, to=alias, subject=f"mailbox {number}")
        dovecot.append(CATCHALL, envelope_headers(message, MAILBOX_SELLER, alias))


def _polling(replicas: list[Serve]) -> list[int]:
    """The replicas that have connected to the IMAP source, by index."""
    return [
        n
        for n, replica in enumerate(replicas)
        if any(r.get("event") == "imap_connected" for r in json_log_lines(replica.stderr()))
    ]


@pytest.mark.timeout(600)
def test_three_replicas_on_one_postgresql_lose_nothing_when_one_is_killed(tmp_path: Path) -> None:
    with postgres_schema() as url, running_dovecot() as dovecot:
        # One maildir for all: the one smarthost every replica hands its mail to.
        outbox = tmp_path / "outbox"
        ports, configs = [], []
        for n in range(REPLICAS):
            folder = tmp_path / f"replica-{n}"
            folder.mkdir()
            ports.append(reserve_port())
            config = process_config(folder, url, f"maildir:{outbox}", ports[-1])
            imap = imap_config(dovecot).replace("\nlease = 6\n", f"\nlease = {LEASE}\n")
            assert f"lease = {LEASE}" in imap
            config.write_text(config.read_text() + imap)
            configs.append(config)
        seller_id = cli_json(configs[0], "seller", "add", "Sakura Shop", "--mailbox", SELLER)[
            "seller_id"
        ]
        mailbox_alias = _mailbox_pair(configs[0])
        before, after = IMAP_MESSAGES
        _put_in_mailbox(dovecot, mailbox_alias, range(before))
        pairs = _orders_at_once(configs[0], seller_id)
        # One pair per seller and buyer however many replicas made the order; aliases unique.
        assert all(len(made) == 1 for made in pairs.values()), pairs
        aliases = [buyer_alias for made in pairs.values() for (_, buyer_alias, _) in made]
        every_alias = [a for made in pairs.values() for (_, b, s) in made for a in (b, s)]
        assert len(set(every_alias)) == 2 * BUYERS

        env = clean_env(BSM_RULES__QUOTA_BASE=str(QUOTA), BSM_RULES__QUOTA_PER_ORDER="0")
        replicas = [
            Serve(config, port, config.parent / "serve.log", env=env)
            for config, port in zip(configs, ports, strict=True)
        ]
        load = Load(ports, aliases)
        try:
            for replica in replicas:
                replica.wait_ready()
            sender = threading.Thread(target=load.run, args=(MESSAGES,))
            sender.start()
            deadline = time.monotonic() + 120
            while len(load.codes) < MESSAGES // 3 or not _polling(replicas):
                assert time.monotonic() < deadline, "neither the load nor the polling began"
                time.sleep(0.05)
            # The replica that holds the mailbox's lease is the one killed.
            [holder] = _polling(replicas)
            os.killpg(replicas[holder].pid, signal.SIGKILL)
            _put_in_mailbox(dovecot, mailbox_alias, range(before, before + after))
            sender.join(240)
            assert not sender.is_alive()
            acknowledged = {s for s, code in load.codes.items() if code == 250}
            mailbox = {f"mailbox {n}" for n in range(before + after)}
            deadline = time.monotonic() + 90
            while (
                not (acknowledged | mailbox) <= set(_delivered(outbox))
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            wait_for(lambda: dovecot.messages(CATCHALL, "INBOX") == [])  # all moved
            # One survivor took the mailbox over once the lease had run out; the third
            # never polled it. (Asked before they stop: the first to stop hands its lease
            # on to the other.)
            polled = _polling(replicas)
            assert len(polled) == 2 and holder in polled, polled
            survivors = [r for n, r in enumerate(replicas) if n != holder]
            assert [replica.stop() for replica in survivors] == [0, 0]
        finally:
            for replica in replicas:
                replica.close()

        everything = _delivered(outbox)
        assert {s: n for s, n in everything.items() if s in mailbox} == dict.fromkeys(mailbox, 1)
        assert count(url, "SELECT count(*) FROM imap_messages") == before + after
        delivered = Counter({s: n for s, n in everything.items() if s not in mailbox})
        codes = Counter(load.codes.values())
        print(f"\n{MESSAGES} sent over {REPLICAS} replicas, one killed: {dict(codes)}")
        assert codes[250] > 0 and codes[452] > 0, codes
        assert acknowledged <= set(delivered), "a 250 was lost"
        assert set(delivered.values()) == {1}, "a message was delivered twice"
        # What was not acknowledged (cut by the kill) was never stored or delivered once.
        assert set(delivered) <= set(load.codes)

        # The day is full exactly: every accepted message counted once, none past the limit.
        assert seller_day(url, seller_id) == (QUOTA, QUOTA)
        assert len(delivered) == QUOTA
        verified = cli_json(configs[0], "archive", "verify")
        assert verified["ok"] is True and verified["problems"] == [], verified
        assert verified["records"] >= QUOTA
