"""Several gateway instances on one database: every message delivered exactly once."""

from __future__ import annotations

import email
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from email.policy import default
from pathlib import Path

from tests.support.gateway import running_gateway, wait_for
from tests.support.mail import send, text_message
from tests.support.sink import smtp_sink

MESSAGES = 60


def test_two_instances_share_the_queue(tmp_path: Path, db_url: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    extra = "workers = 3\n"  # [delivery] is the last section of the test config
    with (
        smtp_sink() as sink,
        running_gateway(
            tmp_path / "a", db_url, transport=f"smtp://127.0.0.1:{sink.port}", extra_config=extra
        ) as first,
        running_gateway(
            tmp_path / "b", db_url, transport=f"smtp://127.0.0.1:{sink.port}", extra_config=extra
        ) as second,
    ):
        parties = first.register()
        ports = [first.port, second.port]

        def one(n: int) -> None:
            message = text_message(
                sender=parties.seller_mailbox, to=parties.buyer_alias, subject=f"message {n}"
            )
            send(ports[n % 2], parties.seller_mailbox, [parties.buyer_alias], message)

        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(one, range(MESSAGES)))

        wait_for(lambda: len(sink.received) >= MESSAGES, timeout=60)
        subjects = Counter(
            str(email.message_from_bytes(r.content, policy=default)["Subject"])
            for r in sink.received
        )
        assert subjects == Counter({f"message {n}": 1 for n in range(MESSAGES)})
        assert sink.attempts == MESSAGES
