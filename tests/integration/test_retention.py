"""Retention on a real gateway, on both stores: records older than retention_days are
purged unless a legal hold covers them or their delivery is queued; a purge leaves
tombstones and is a record of the log itself, so the archive still verifies; holds and
releases are records too; a purge killed with SIGKILL in the middle and run again leaves an
archive that is whole and verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from gateway.audit.bundle import verify_bundle
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.export import ExportError, Selection, export_bundle
from gateway.audit.purge import Purger
from gateway.audit.verify import verify_archive
from gateway.core.clock import FrozenClock
from gateway.storage import archive, retention
from gateway.storage.schema import Body, Message, Outbound, table_of
from tests.support.gateway import Parties, RunningGateway, running_gateway
from tests.support.process import BSM_GATEWAY, clean_env, cli_json, one_json_object, run_cli

RETENTION = 730
LATER = datetime.now(UTC) + timedelta(days=RETENTION + 1)  # every message is past it then


@pytest.fixture
def gw(tmp_path: Path, db_url: str) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path, db_url) as gateway:
        yield gateway


def two_pairs(gw: RunningGateway) -> tuple[Parties, Parties]:
    first = gw.register(shop="Sakura Shop", buyer="kim@buyer-mail.example")
    second = gw.register(shop="Tea House", buyer="lee@buyer-mail.example")
    for parties in (first, second):
        for n in range(3):
            gw.seller_writes(parties, subject=f"Parcel {n}", body=f"Your parcel {n} left.")
    gw.delivered(6)
    return first, second


def log_everything(gw: RunningGateway, clock: FrozenClock | None = None) -> None:
    key = gw.gateway.services.archive_keys.active()
    assert key is not None
    Checkpointer(gw.gateway.database, key, clock or gw.gateway.clock).run_once()


def purger(gw: RunningGateway) -> Purger:
    return Purger(gw.gateway.database, FrozenClock(LATER), RETENTION, batch=2)


def purged_ids(gw: RunningGateway) -> set[int]:
    with gw.gateway.database.read_connection() as connection:
        rows = connection.execute(select(Message.id).where(Message.purged_at.is_not(None)))
        return set(rows.scalars())


def assert_verifies(gw: RunningGateway) -> None:
    keys = gw.gateway.services.archive_keys.public_keys()
    report = verify_archive(gw.gateway.database, keys)
    assert report.ok, report.problems


def test_old_records_go_held_ones_stay_and_the_archive_still_verifies(
    gw: RunningGateway,
) -> None:
    first, second = two_pairs(gw)
    log_everything(gw)
    database = gw.gateway.database
    with database.writing() as connection:
        hold_id = retention.place_hold(
            connection, "buyer", "KIM@buyer-mail.example", "dispute 77", datetime.now(UTC)
        )
    assert purger(gw).due() == 3  # the other pair's three
    done = purger(gw).run()
    assert (done.records, done.batches) == (3, 2)  # batches of two
    with database.read_connection() as connection:
        kept = set(archive.message_ids(connection, pair_id=first.pair_id))
        gone = set(archive.message_ids(connection, pair_id=second.pair_id))
        tombstone = connection.execute(
            select(Message.envelope_from, Message.received_sha256).where(Message.id.in_(gone))
        ).all()
    assert purged_ids(gw) == gone and not kept & gone
    assert set(tombstone) == {("", None)}
    log_everything(gw)  # the purges and the hold are records of the log too
    assert_verifies(gw)
    assert purger(gw).run().records == 0  # nothing more may go: idempotent

    with database.writing() as connection:
        retention.release_hold(connection, hold_id, "settled", datetime.now(UTC))
        with pytest.raises(retention.HoldError):
            retention.release_hold(connection, hold_id, "again", datetime.now(UTC))
    assert purger(gw).run().records == 3
    log_everything(gw)
    assert_verifies(gw)
    with database.read_connection() as connection:
        bodies = connection.execute(select(func.count()).select_from(Body)).scalar_one()
    assert bodies == 0  # nothing left that names them


@pytest.mark.parametrize("scope", ["pair", "seller", "order"])
def test_each_kind_of_hold_keeps_its_records(gw: RunningGateway, scope: str) -> None:
    first, _ = two_pairs(gw)
    log_everything(gw)
    values = {"pair": str(first.pair_id), "seller": str(first.seller_id), "order": "113-77"}
    if scope == "order":
        gw.registry.add_order(first.seller_id, first.buyer_id, "113-77", None)
    with gw.gateway.database.writing() as connection:
        retention.place_hold(connection, scope, values[scope], "dispute", datetime.now(UTC))
    purger(gw).run()
    with gw.gateway.database.read_connection() as connection:
        kept = set(archive.message_ids(connection, pair_id=first.pair_id))
    assert len(kept) == 3 and not kept & purged_ids(gw)


def test_a_queued_delivery_and_an_unlogged_record_are_never_purged(gw: RunningGateway) -> None:
    two_pairs(gw)
    database = gw.gateway.database
    with database.writing() as connection:
        queued = connection.execute(select(Outbound.message_id).limit(1)).scalar_one()
        connection.execute(
            update(Outbound).where(Outbound.message_id == queued).values(state="queued")
        )
    assert purger(gw).run().records == 0  # nothing is in the log yet
    log_everything(gw)
    assert purger(gw).run().records == 5
    assert queued not in purged_ids(gw)


def test_a_purge_killed_in_the_middle_and_run_again_leaves_a_whole_archive(
    tmp_path: Path, gw: RunningGateway
) -> None:
    parties = gw.register()
    database = gw.gateway.database
    for n in range(4):
        gw.seller_writes(parties, subject=f"Copy {n}")
    gw.delivered(4)
    # Many old records, cheaply: copies of these rows, logged before the purge.
    with database.writing() as connection:
        rows = connection.execute(select(table_of(Message))).mappings().all()
        copies = []
        for n in range(3000):
            row = dict(rows[n % len(rows)])
            row.pop("id")
            row["log_seq"] = None
            row["gateway_message_id"] = f"<copy-{n}@relay.example.test>"
            copies.append(row)
        connection.execute(table_of(Message).insert(), copies)
    log_everything(gw)
    config = tmp_path / "gateway.toml"
    env = clean_env(BSM_ARCHIVE__RETENTION_DAYS="1")
    # The records are a day old to that purge only if the clock moves: age them instead.
    with database.writing() as connection:
        connection.execute(
            update(Message).values(received_at=datetime.now(UTC) - timedelta(days=3))
        )
    log_path = tmp_path / "purge.log"
    with log_path.open("wb") as log:
        child = subprocess.Popen(
            [BSM_GATEWAY, "--config", str(config), "archive", "purge", "--json"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while not purged_ids(gw) and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    partly = len(purged_ids(gw))
    assert 0 < partly < 3004, "killed while purging"
    again = run_cli(config, "archive", "purge", "--json", env=env)  # to the end
    assert again.returncode == 0, again.stderr
    assert one_json_object(again.stdout)["purged"] == 3004 - partly
    log_everything(gw)
    assert_verifies(gw)


def test_the_hold_and_purge_commands(tmp_path: Path, gw: RunningGateway) -> None:
    first, _ = two_pairs(gw)
    config = tmp_path / "gateway.toml"
    placed = cli_json(config, "archive", "hold", "--pair", str(first.pair_id), "--reason", "case 9")
    assert placed["scope"] == "pair"
    [listed] = cli_json(config, "archive", "holds")["holds"]
    assert (listed["hold_id"], listed["reason"]) == (placed["hold_id"], "case 9")
    refused = run_cli(config, "archive", "hold", "--pair", "1", "--seller", "1", "--reason", "x")
    assert refused.returncode == 1 and "one of --pair" in refused.stderr
    assert cli_json(config, "archive", "purge", "--dry-run") == {"due": 0, "purged": 0}
    cli_json(config, "archive", "release", str(placed["hold_id"]), "--reason", "closed")
    assert cli_json(config, "archive", "holds")["holds"] == []
    assert len(cli_json(config, "archive", "holds", "--released")["holds"]) == 1


def test_an_export_leaves_purged_messages_out(tmp_path: Path, gw: RunningGateway) -> None:
    first, second = two_pairs(gw)
    log_everything(gw)
    with gw.gateway.database.writing() as connection:
        retention.place_hold(connection, "pair", str(first.pair_id), "case", datetime.now(UTC))
    purger(gw).run()
    key = gw.gateway.services.archive_keys.active()
    assert key is not None
    checkpointer = Checkpointer(gw.gateway.database, key, gw.gateway.clock)
    with pytest.raises(ExportError, match="purged"):
        export_bundle(
            gw.gateway.database, checkpointer, Selection(pair_id=second.pair_id), tmp_path / "x.zip"
        )
    bundle = tmp_path / "kept.zip"
    exported = export_bundle(
        gw.gateway.database, checkpointer, Selection(pair_id=first.pair_id), bundle
    )
    assert exported.messages == 3
    assert verify_bundle(bundle, key.public_key).ok
