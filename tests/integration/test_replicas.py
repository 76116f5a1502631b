"""Three `serve` replicas on one PostgreSQL, as a deployment behind a TCP load balancer (or
MX records of equal preference) runs them: orders made through all of them at once, clients
spread over all three, one replica killed with SIGKILL in the middle of the load. Every 250
is delivered exactly once, the day's quota is exact, each seller and buyer has one pair with
aliases of its own, and the archive log verifies whole."""

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

from tests.support.archive import seller_day
from tests.support.databases import postgres_schema
from tests.support.mail import read, text_message, wire_bytes
from tests.support.process import Serve, clean_env, cli_json, process_config, reserve_port

REPLICAS = 3
CLIENTS = 6
BUYERS = 12
QUOTA = 240  # the seller's day: what the load must reach, across the replicas
MESSAGES = 420
SELLER = "owner@sakura-shop.example"


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


def test_three_replicas_on_one_postgresql_lose_nothing_when_one_is_killed(tmp_path: Path) -> None:
    with postgres_schema() as url:
        # One maildir for all: the one smarthost every replica hands its mail to.
        outbox = tmp_path / "outbox"
        ports, configs = [], []
        for n in range(REPLICAS):
            folder = tmp_path / f"replica-{n}"
            folder.mkdir()
            ports.append(reserve_port())
            configs.append(process_config(folder, url, f"maildir:{outbox}", ports[-1]))
        seller_id = cli_json(configs[0], "seller", "add", "Sakura Shop", "--mailbox", SELLER)[
            "seller_id"
        ]
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
            while len(load.codes) < MESSAGES // 3:
                time.sleep(0.05)
            victim = replicas[1]
            os.killpg(victim.pid, signal.SIGKILL)
            sender.join(240)
            assert not sender.is_alive()
            acknowledged = {s for s, code in load.codes.items() if code == 250}
            deadline = time.monotonic() + 60
            while not acknowledged <= set(_delivered(outbox)) and time.monotonic() < deadline:
                time.sleep(0.2)
            survivors = [replicas[0], replicas[2]]
            assert [replica.stop() for replica in survivors] == [0, 0]
        finally:
            for replica in replicas:
                replica.close()

        delivered = _delivered(outbox)
        codes = Counter(load.codes.values())
        print(f"\n{MESSAGES} sent over {REPLICAS} replicas, one killed: {dict(codes)}")
        assert codes[250] > 0 and codes[452] > 0, codes
        assert acknowledged <= set(delivered), "a 250 was lost"
        assert set(delivered.values()) == {1}, "a message was delivered twice"
        # What was not acknowledged (cut by the kill) was never stored or delivered once.
        assert set(delivered) <= set(load.codes)

        # The day is full exactly: every accepted message counted once, none past the limit.
        assert seller_day(url) == (QUOTA, QUOTA)
        assert len(delivered) == QUOTA
        verified = cli_json(configs[0], "archive", "verify")
        assert verified["ok"] is True and verified["problems"] == [], verified
        assert verified["records"] >= QUOTA
