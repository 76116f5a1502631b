"""The database away for a while under load, as operators meet it: PostgreSQL unreachable
for 30 s (every connection cut, new ones refused) while clients keep sending, and an SQLite
file locked by another process. Senders get 451 meanwhile, never 250; the same process
serves again once the database is back, and every message that got a 250 is delivered
exactly once."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.integration.test_process import Deployment
from tests.support.databases import postgres_schema
from tests.support.gateway import running_gateway
from tests.support.mail import send, text_message, wire_bytes
from tests.support.proxy import tcp_proxy

OUTAGE = 30.0
SENDERS = 4


def test_postgresql_away_for_30_s_under_load_gets_451_and_loses_nothing(tmp_path: Path) -> None:
    with postgres_schema() as direct_url:
        url = make_url(direct_url)
        with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
            deployment = Deployment(tmp_path, proxied)
            p = deployment.parties
            accepted: list[str] = []
            replies: Counter[int] = Counter()
            lock = threading.Lock()
            stop = threading.Event()

            def sender(index: int) -> None:
                n = 0
                while not stop.is_set():
                    subject = f"outage s{index} m{n}"
                    message = wire_bytes(
                        text_message(sender=p.buyer_address, to=p.seller_alias, subject=subject)
                    )
                    try:
                        with smtplib.SMTP("127.0.0.1", deployment.port, timeout=60) as client:
                            client.sendmail(p.buyer_address, [p.seller_alias], message)
                    except smtplib.SMTPRecipientsRefused as error:
                        [(code, _)] = error.recipients.values()
                        with lock:
                            replies[code] += 1
                        time.sleep(0.5)  # a sending MTA retries later; this one soon
                        continue
                    except smtplib.SMTPResponseException as error:
                        with lock:
                            replies[error.smtp_code] += 1
                        time.sleep(0.5)
                        continue
                    with lock:
                        replies[250] += 1
                        accepted.append(subject)
                    n += 1
                    time.sleep(0.05)

            with deployment.serve() as serve:
                pid = serve.pid
                threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
                for thread in threads:
                    thread.start()
                time.sleep(3)
                before = len(accepted)
                proxy.cut()
                time.sleep(2)  # what was in flight at the cut has been answered
                during = len(accepted)
                time.sleep(OUTAGE - 2)
                in_outage = len(accepted) - during
                proxy.restore()
                time.sleep(8)
                stop.set()
                for thread in threads:
                    thread.join(90)
                deployment.wait_all_recorded(len(accepted), timeout=60)
                assert serve.pid == pid and serve.process.poll() is None  # never restarted
                assert serve.stop() == 0
            counts = deployment.subjects()
    print(
        f"\nbefore the outage {before} accepted; during {OUTAGE:.0f} s: {in_outage} accepted, "
        f"replies {dict(replies)}; after: {len(accepted) - during}"
    )
    assert before > 0 and len(accepted) > during  # it took mail before and after
    assert in_outage == 0  # never a 250 while the database was away
    assert replies[451] > 0 and not any(code >= 500 for code in replies)
    assert counts == Counter(dict.fromkeys(accepted, 1))


def test_sqlite_locked_by_another_process_gets_451_then_takes_mail_again(
    tmp_path: Path,
) -> None:
    database = tmp_path / "gateway.db"
    with running_gateway(tmp_path, f"sqlite:///{database}") as gw:
        parties = gw.register()
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys, time\n"
                f"c = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
                # Held until the test has its answer (then killed): longer than busy_timeout
                # however slowly the session gets to its commit.
                "c.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(120)\n",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            message = text_message(sender=parties.seller_mailbox, to=parties.buyer_alias)
            with smtplib.SMTP("127.0.0.1", gw.port, timeout=60) as client:
                client.ehlo()
                client.mail(parties.seller_mailbox)
                client.rcpt(parties.buyer_alias)
                code, text = client.data(wire_bytes(message))
            assert (code, text[:5]) == (451, b"4.3.0"), text
        finally:
            holder.kill()
            holder.communicate()
        assert send(gw.port, parties.seller_mailbox, [parties.buyer_alias], message) == {}
        assert len(gw.delivered(1)) == 1
