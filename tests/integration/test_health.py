"""/healthz, /readyz and the queue's metrics on the metrics listener, over HTTP."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from gateway.app import Gateway
from gateway.core.clock import SystemClock
from gateway.settings import load_settings
from gateway.storage.migrate import SCHEMA_REVISION, open_database
from tests.support.gateway import RunningGateway, running_gateway, wait_for
from tests.support.mail import send, text_message
from tests.support.process import process_config, reserve_port, run_cli, serving

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "bsm-gateway.json"


def _family(name: str) -> str:
    return re.sub(r"_(total|created|bucket|count|sum)$", "", name)


def _get(gw: RunningGateway, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{gw.gateway.metrics_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _json(gw: RunningGateway, path: str) -> tuple[int, dict[str, Any]]:
    code, body = _get(gw, path)
    return code, json.loads(body)


def test_a_serving_gateway_is_live_and_ready_and_counts_its_deliveries(
    tmp_path: Path, db_url: str
) -> None:
    with running_gateway(tmp_path, db_url) as gw:
        assert _json(gw, "/healthz") == (200, {"status": "ok"})
        code, ready = _json(gw, "/readyz")
        assert code == 200, ready
        assert ready == {
            "status": "ready",
            "checks": {"database": "ok", "queue": "ok", "listeners": "ok"},
        }
        p = gw.register()
        message = text_message(sender=p.seller_mailbox, to=p.buyer_alias)
        guessed = f"nobody@{p.buyer_alias.split('@')[1]}"
        refused = send(gw.port, p.seller_mailbox, [p.buyer_alias, guessed], message)
        assert list(refused) == [guessed]
        gw.delivered(1)
        # The attempt is counted once its outcome is written, just after the file appears.
        delivered = 'bsm_delivery_attempts_total{result="delivered"} 1.0'

        def counted() -> str | None:
            metrics = _get(gw, "/metrics")[1]
            return metrics if delivered in metrics else None

        metrics = wait_for(counted)
        assert "bsm_delivery_seconds_count 1.0" in metrics
        # A recipient refused at RCPT counts under its rule, as a message's rules do.
        assert 'bsm_rule_hits_total{mode="enforce",rule="rcpt.alias"} 1.0' in metrics
        assert 'bsm_queue_depth{state="due"} 0.0' in metrics
        assert "bsm_queue_oldest_due_seconds 0.0" in metrics
        assert re.search(r"^bsm_archive_unlogged \d", metrics, re.MULTILINE)
        assert re.search(r"^bsm_archive_log_size \d", metrics, re.MULTILINE)
        # Every metric the shipped Grafana dashboard charts is one the gateway serves.
        served = {_family(n) for n in re.findall(r"^# TYPE (\S+) ", metrics, re.MULTILINE)}
        dashboard = json.loads(DASHBOARD.read_text())
        charted = {
            _family(name)
            for panel in dashboard["panels"]
            for target in panel["targets"]
            for name in re.findall(r"\bbsm_\w+", target["expr"])
        }
        assert len(charted) >= 10 and charted <= served, charted - served


def test_a_schema_behind_the_code_is_not_ready_one_ahead_is(tmp_path: Path, db_url: str) -> None:
    with running_gateway(tmp_path, db_url) as gw:
        with gw.gateway.database.writing() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        try:
            code, ready = _json(gw, "/readyz")
            assert code == 503
            assert ready["status"] == "not ready"
            assert ready["checks"]["database"] == (
                f"the schema is at 0001, this gateway needs {SCHEMA_REVISION}"
            )
            assert _get(gw, "/healthz")[0] == 200  # alive all the same: no restart helps
            # A later schema (a rolling upgrade migrated before replacing this replica) is
            # no reason to take it out of service.
            with gw.gateway.database.writing() as connection:
                connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
            assert _json(gw, "/readyz")[0] == 200
        finally:
            with gw.gateway.database.writing() as connection:
                connection.execute(
                    text("UPDATE alembic_version SET version_num = :v"), {"v": SCHEMA_REVISION}
                )


def test_a_queue_no_worker_takes_is_not_ready(tmp_path: Path, db_url: str) -> None:
    """A delivery left due for longer than queue_stuck_after, with no process taking it."""
    with running_gateway(tmp_path, db_url) as gw:
        p = gw.register()
        message = text_message(sender=p.seller_mailbox, to=p.buyer_alias)
        guessed = f"nobody@{p.buyer_alias.split('@')[1]}"
        refused = send(gw.port, p.seller_mailbox, [p.buyer_alias, guessed], message)
        assert list(refused) == [guessed]
        gw.delivered(1)
    database = open_database(db_url)
    due = SystemClock().now() - timedelta(hours=1)
    with database.writing() as connection:
        connection.execute(
            text("UPDATE outbound SET state = 'queued', next_attempt_at = :due"), {"due": due}
        )
    gateway = Gateway(load_settings(tmp_path / "gateway.toml"), database=database)
    findings = {f.probe: f.problem for f in gateway.health.ready()}
    assert findings["database"] is None
    assert findings["queue"] is not None
    assert findings["queue"].startswith("a delivery has been due for 36")
    assert findings["listeners"] == "not listening: nothing started yet"
    database.dispose()


def test_check_asks_the_serving_process_for_health_and_readiness(
    tmp_path: Path, db_url: str
) -> None:
    port, metrics_port = reserve_port(), reserve_port()
    config = process_config(tmp_path, db_url, f"maildir:{tmp_path / 'outbox'}", port)
    text_config = config.read_text()
    config.write_text(
        text_config.replace("[metrics]\nport = 0", f"[metrics]\nport = {metrics_port}")
    )
    with serving(config, port, tmp_path):
        assert run_cli(config, "check").stdout.strip() == "ok"
        assert run_cli(config, "check", "--ready").stdout.strip() == "ok"
        database = open_database(db_url)
        with database.writing() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        not_ready = run_cli(config, "check", "--ready")
        assert not_ready.returncode == 1
        assert (
            f"/readyz: database: the schema is at 0001, this gateway needs {SCHEMA_REVISION}"
            in (not_ready.stderr)
        )
        assert run_cli(config, "check").returncode == 0  # alive, only not ready
        with database.writing() as connection:
            connection.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": SCHEMA_REVISION}
            )
        database.dispose()
    gone = run_cli(config, "check")
    assert gone.returncode == 1 and "SMTP listener not answering" in gone.stderr
