"""The archive's Merkle log on a real gateway, on both stores: every committed message is
appended and signed, `archive verify` holds the stored archive to it, and each way of
altering the archive after the fact is found and named: one byte of a stored message, one
field of a record, a deleted row, two rows reordered, a rewritten checkpoint."""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from gateway.audit.bundle import verify_bundle
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.export import Selection, export_bundle
from gateway.audit.signing import new_log_key
from gateway.audit.verify import Verification, verify_archive
from gateway.core.merkle import inclusion_proof, leaf_hash, root_of, verify_inclusion
from gateway.storage import archive, archive_log
from gateway.storage.database import Database
from gateway.storage.schema import Body, Checkpoint, LogLeaf, Message, table_of
from tests.support.databases import postgres_schema
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.mail import send, text_message
from tests.support.process import (
    Serve,
    clean_env,
    cli_json,
    json_log_lines,
    process_config,
    register_with_cli,
    reserve_port,
    run_cli,
)

MESSAGES = 4


@pytest.fixture
def logged(tmp_path: Path, db_url: str) -> Iterator[RunningGateway]:
    """A gateway whose archive holds MESSAGES seller messages, all appended and signed."""
    with running_gateway(tmp_path, db_url) as gw:
        parties = gw.register()
        for n in range(MESSAGES):
            gw.seller_writes(parties, subject=f"Parcel {n}", body=f"Your parcel {n} left today.")
        gw.delivered(MESSAGES)
        run = checkpointer(gw).run_once()
        assert run.appended == MESSAGES and run.checkpoint is not None
        assert run.checkpoint.tree_size == MESSAGES
        yield gw


def checkpointer(gw: RunningGateway) -> Checkpointer:
    key = gw.gateway.services.archive_keys.active()
    assert key is not None
    return Checkpointer(gw.gateway.database, key, gw.gateway.clock)


def verified(gw: RunningGateway) -> Verification:
    keys = gw.gateway.services.archive_keys.public_keys()
    return verify_archive(gw.gateway.database, keys)


def test_every_message_is_logged_and_the_archive_verifies(logged: RunningGateway) -> None:
    report = verified(logged)
    assert report.ok, report.problems
    assert (report.records, report.checkpoints, report.tree_size) == (MESSAGES, 1, MESSAGES)
    assert report.bodies == 2 * MESSAGES  # as received and as delivered, each distinct
    # Nothing new: no second checkpoint of the same head.
    assert checkpointer(logged).run_once().checkpoint is None


def test_a_leaf_is_the_record_and_proves_its_place(logged: RunningGateway) -> None:
    database = logged.gateway.database
    with database.read_connection() as connection:
        records = list(archive_log.logged_records(connection))
        signed = archive_log.latest_checkpoint(connection)
    assert signed is not None
    leaves = [leaf_hash(archive_log.message_record(r.message or {})) for r in records]
    assert leaves == [r.leaf_hash for r in records]
    assert root_of(leaves) == signed.root_hash
    for index, leaf in enumerate(leaves):
        proof = inclusion_proof(leaves, index)
        assert verify_inclusion(leaf, index, len(leaves), proof, signed.root_hash)


def _first_message(database: Database) -> tuple[int, str]:
    with database.read_connection() as connection:
        row = connection.execute(
            select(Message.id, Message.received_sha256).order_by(Message.id).limit(1)
        ).one()
    return row.id, row.received_sha256


def _fails_with(gw: RunningGateway, *expected: str) -> None:
    report = verified(gw)
    assert not report.ok
    assert all(any(e in problem for problem in report.problems) for e in expected), report.problems


def test_one_byte_of_a_stored_message_changed(logged: RunningGateway) -> None:
    database = logged.gateway.database
    _, key = _first_message(database)
    with database.writing() as connection:
        data = archive.bodies(connection, [key])[key]
        changed = data.replace(b"parcel", b"pArcel", 1)
        assert changed != data
        connection.execute(
            update(Body).where(Body.sha256 == key).values(data=archive.compress(changed))
        )
    _fails_with(logged, f"body {key[:16]}: its bytes are not the ones stored under it")


def test_one_field_of_a_record_changed(logged: RunningGateway) -> None:
    database = logged.gateway.database
    message_id, _ = _first_message(database)
    with database.writing() as connection:
        connection.execute(
            update(Message).where(Message.id == message_id).values(verdict="refused")
        )
    _fails_with(logged, f"(message {message_id}): the stored record differs from the one logged")


def test_a_leaf_deleted(logged: RunningGateway) -> None:
    with logged.gateway.database.writing() as connection:
        connection.execute(table_of(LogLeaf).delete().where(LogLeaf.seq == 1))
    _fails_with(
        logged,
        "record 1: missing from the log",
        f"checkpoint at size {MESSAGES}: the log up to it is not the one that was signed",
    )


def test_a_record_deleted(logged: RunningGateway) -> None:
    database = logged.gateway.database
    message_id, _ = _first_message(database)
    with database.writing() as connection:
        connection.execute(text("DELETE FROM outbound WHERE message_id = :id"), {"id": message_id})
        connection.execute(table_of(Message).delete().where(Message.id == message_id))
    _fails_with(logged, f"record 0 (message {message_id}): the record is gone")


def test_two_records_reordered(logged: RunningGateway) -> None:
    database = logged.gateway.database
    with database.writing() as connection:
        first, second = connection.execute(
            select(LogLeaf.ref_id).where(LogLeaf.seq.in_([1, 2])).order_by(LogLeaf.seq)
        ).scalars()
        # The leaves swap places, and the records the places they name: all kept consistent
        # but for the order, which the signed root still fixes.
        connection.execute(update(LogLeaf).where(LogLeaf.seq == 1).values(seq=-1))
        connection.execute(update(LogLeaf).where(LogLeaf.seq == 2).values(seq=1))
        connection.execute(update(LogLeaf).where(LogLeaf.seq == -1).values(seq=2))
        connection.execute(update(Message).where(Message.id == first).values(log_seq=-1))
        connection.execute(update(Message).where(Message.id == second).values(log_seq=1))
        connection.execute(update(Message).where(Message.id == first).values(log_seq=2))
    _fails_with(
        logged, f"checkpoint at size {MESSAGES}: the log up to it is not the one that was signed"
    )


def test_a_checkpoint_rewritten(logged: RunningGateway) -> None:
    with logged.gateway.database.writing() as connection:
        connection.execute(update(Checkpoint).values(root_hash="00" * 32))
    _fails_with(logged, f"checkpoint at size {MESSAGES}: its signature does not verify")


def test_a_checkpoint_signed_by_another_key(logged: RunningGateway) -> None:
    other = base64.b64encode(b"\1" * 64).decode()
    with logged.gateway.database.writing() as connection:
        connection.execute(update(Checkpoint).values(signature=other))
    _fails_with(logged, f"checkpoint at size {MESSAGES}: its signature does not verify")


def test_a_message_committed_late_with_a_lower_id_is_not_left_out(
    logged: RunningGateway,
) -> None:
    """Processes commit out of id order: the log takes what is committed, not ids past a mark."""
    database = logged.gateway.database
    with database.writing() as connection:
        row = (
            connection.execute(select(table_of(Message)).order_by(Message.id).limit(1))
            .mappings()
            .one()
        )
        copy = {k: v for k, v in row.items() if k not in ("id", "log_seq")}
        copy["gateway_message_id"] = "<late@relay.example.test>"
        connection.execute(table_of(Message).insert().values(id=-5, **copy))
    run = checkpointer(logged).run_once()
    assert run.appended == 1 and run.checkpoint is not None
    assert run.checkpoint.tree_size == MESSAGES + 1
    report = verified(logged)
    assert report.ok, report.problems
    assert report.records == MESSAGES + 1


def test_the_commands(logged: RunningGateway, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    key = cli_json(config, "archive", "key", "show")
    stored = logged.gateway.services.archive_keys.active()
    assert stored is not None
    assert (key["key_id"], key["public_key"]) == (stored.key_id, stored.public_key)
    assert cli_json(config, "archive", "checkpoint") == {"appended": 0, "checkpoint": None}
    report = cli_json(config, "archive", "verify")
    assert report["ok"] and report["records"] == MESSAGES and report["problems"] == []
    with logged.gateway.database.writing() as connection:
        connection.execute(update(Checkpoint).values(root_hash="00" * 32))
    failed = run_cli(config, "archive", "verify", "--json")
    assert failed.returncode == 1
    assert "its signature does not verify" in failed.stdout


def test_two_gateways_on_one_postgresql_keep_one_whole_log(tmp_path: Path) -> None:
    """Two `serve` instances (two worker processes each) take messages at once on one
    PostgreSQL, each with its own checkpointer: their transactions commit out of id order,
    and still every record is in the one log, once, and the archive verifies."""
    subjects = [f"two gateways {n}" for n in range(60)]
    with postgres_schema() as url:
        outbox = tmp_path / "outbox"
        first, second = tmp_path / "a", tmp_path / "b"
        first.mkdir()
        second.mkdir()
        ports = reserve_port(), reserve_port()
        configs = [
            process_config(folder, url, f"maildir:{outbox}", port)
            for folder, port in zip((first, second), ports, strict=True)
        ]
        parties = register_with_cli(configs[0])
        env = clean_env(BSM_ARCHIVE__CHECKPOINT_INTERVAL="0.1", BSM_SERVER__PROCESSES="2")
        gateways = [
            Serve(config, port, config.parent / "serve.log", env=env)
            for config, port in zip(configs, ports, strict=True)
        ]
        try:
            for gateway in gateways:
                gateway.wait_ready()

            def send_one(numbered: tuple[int, str]) -> int:
                n, subject = numbered
                mail = text_message(
                    sender=parties.seller_mailbox, to=parties.buyer_alias, subject=subject
                )
                refused = send(ports[n % 2], parties.seller_mailbox, [parties.buyer_alias], mail)
                return len(refused)

            with ThreadPoolExecutor(max_workers=20) as pool:
                assert sum(pool.map(send_one, enumerate(subjects))) == 0
            assert [gateway.stop() for gateway in gateways] == [0, 0]
            events = [[r.get("event") for r in json_log_lines(g.stderr())] for g in gateways]
            assert all("received" in own for own in events)  # each took messages in
            # Both checkpointers ran all along; which of them found records still waiting
            # is a race, so at least one appended (usually both).
            assert any("archive_checkpoint" in own for own in events)
        finally:
            for gateway in gateways:
                gateway.close()
        report = cli_json(configs[1], "archive", "verify")
    assert report["ok"], report["problems"]
    assert (report["records"], report["unlogged"]) == (len(subjects), 0)
    assert report["tree_size"] == len(subjects)


def _export(gw: RunningGateway, out: Path, selection: Selection) -> None:
    export_bundle(gw.gateway.database, checkpointer(gw), selection, out)


def _rewritten(bundle: Path, out: Path, change: dict[str, bytes]) -> Path:
    """A copy of `bundle` with the files of `change` replaced."""
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(out, "w") as copy:
        for name in source.namelist():
            copy.writestr(name, change.get(name, source.read(name)))
    return out


def test_an_export_proves_itself_offline_and_each_alteration_is_named(
    logged: RunningGateway, tmp_path: Path
) -> None:
    key = logged.gateway.services.archive_keys.active()
    assert key is not None
    pair_id = archived_pair(logged)
    bundle = tmp_path / "pair.zip"
    _export(logged, bundle, Selection(pair_id=pair_id))
    check = verify_bundle(bundle, key.public_key)
    assert check.ok, check.problems
    assert (check.messages, check.tree_size) == (MESSAGES, MESSAGES)

    with zipfile.ZipFile(bundle) as source:
        manifest = json.loads(source.read("manifest.json"))
        first = manifest["messages"][0]
        eml = source.read(first["delivered"])
        record = source.read(first["record"])
    where = f"message {first['message_id']}"
    cases = {
        first["delivered"]: (eml.replace(b"parcel", b"pArcel", 1), "as delivered is not"),
        first["record"]: (record.replace(b'"accepted"', b'"refused"'), "record is not the one"),
    }
    for name, (changed, problem) in cases.items():
        check = verify_bundle(
            _rewritten(bundle, tmp_path / "x.zip", {name: changed}), key.public_key
        )
        assert any(p.startswith(where) and problem in p for p in check.problems), check.problems
    manifest["checkpoint"]["tree_size"] += 1
    forged = json.dumps(manifest).encode()
    check = verify_bundle(
        _rewritten(bundle, tmp_path / "y.zip", {"manifest.json": forged}), key.public_key
    )
    assert any("signature does not verify" in p for p in check.problems), check.problems
    other = new_log_key()
    assert not verify_bundle(bundle, other.public_key).ok


def archived_pair(gw: RunningGateway) -> int:
    with gw.gateway.database.read_connection() as connection:
        pair_id = connection.execute(select(Message.pair_id).limit(1)).scalar_one()
    assert isinstance(pair_id, int)
    return pair_id


def test_export_and_verify_export_commands(logged: RunningGateway, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    key = cli_json(config, "archive", "key", "show")["public_key"]
    bundle = tmp_path / "ids.zip"
    ids = ",".join(str(n) for n in message_ids(logged)[:2])
    exported = cli_json(config, "archive", "export", "--ids", ids, "--out", str(bundle))
    assert exported["messages"] == 2
    checked = run_cli(None, "archive", "verify-export", str(bundle), "--public-key", key, "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["ok"] is True
    nothing = run_cli(config, "archive", "export", "--order-ref", "none", "--out", str(bundle))
    assert nothing.returncode == 1 and "no archived message matches" in nothing.stderr


def message_ids(gw: RunningGateway) -> list[int]:
    with gw.gateway.database.read_connection() as connection:
        return list(connection.execute(select(Message.id).order_by(Message.id)).scalars())
