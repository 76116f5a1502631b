"""The daily quota holds under concurrency: sessions racing in one gateway, and two gateway
processes sharing one database. No seller ever gets one message past its limit."""

from __future__ import annotations

import smtplib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.archive import seller_day
from tests.support.databases import postgres_schema
from tests.support.gateway import Parties, running_gateway
from tests.support.mail import text_message, wire_bytes
from tests.support.process import Serve, clean_env, process_config, register_with_cli
from tests.support.sink import free_port

LIMIT = 7
ATTEMPTS = 24
RULES = f"quota_base = {LIMIT}\nquota_per_order = 0"


def _race(ports: Sequence[int], parties: Parties) -> Counter[int]:
    """ATTEMPTS messages from the seller at once over 8 connections, spread over `ports`;
    the DATA reply code of each."""
    raw = wire_bytes(text_message(sender=parties.seller_mailbox, to=parties.buyer_alias))

    def one(n: int) -> int:
        with smtplib.SMTP("127.0.0.1", ports[n % len(ports)], timeout=60) as client:
            client.ehlo()
            client.mail(parties.seller_mailbox)
            client.rcpt(parties.buyer_alias)
            code, _ = client.data(raw)
            return code

    with ThreadPoolExecutor(max_workers=8) as pool:
        return Counter(pool.map(one, range(ATTEMPTS)))


def test_racing_sessions_never_pass_the_quota(tmp_path: Path, db_url: str) -> None:
    with running_gateway(tmp_path, db_url, rules_config=RULES) as gw:
        parties = gw.register()
        codes = _race([gw.port], parties)
    assert codes == Counter({250: LIMIT, 452: ATTEMPTS - LIMIT})
    assert seller_day(db_url) == (LIMIT, LIMIT)


def test_two_processes_on_one_postgresql_never_pass_the_quota(tmp_path: Path) -> None:
    with postgres_schema() as url:
        ports = [free_port(), free_port()]
        configs = []
        for n, port in enumerate(ports):
            folder = tmp_path / f"gateway-{n}"
            folder.mkdir()
            configs.append(process_config(folder, url, f"maildir:{folder / 'outbox'}", port))
        parties = register_with_cli(configs[0])
        env = clean_env(BSM_RULES__QUOTA_BASE=str(LIMIT), BSM_RULES__QUOTA_PER_ORDER="0")
        gateways = [
            Serve(config, port, config.parent / "serve.log", env=env)
            for config, port in zip(configs, ports, strict=True)
        ]
        try:
            for gateway in gateways:
                gateway.wait_ready()
            codes = _race(ports, parties)
            assert [gateway.stop() for gateway in gateways] == [0, 0]
        finally:
            for gateway in gateways:
                gateway.close()
        assert codes == Counter({250: LIMIT, 452: ATTEMPTS - LIMIT})
        assert seller_day(url) == (LIMIT, LIMIT)
