"""The archive's signed log: its key, a checkpoint now, and the verification of it all."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from gateway.audit.bundle import verify_bundle
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.export import ExportError, Selection, export_bundle
from gateway.audit.purge import Purger
from gateway.audit.signing import new_log_key
from gateway.audit.verify import verify_archive
from gateway.cli.common import (
    JsonFlag,
    archive_app,
    archive_key_app,
    emit,
    err,
    fail,
    out,
    services_of,
)
from gateway.core.records import SignedCheckpoint
from gateway.storage import retention


@archive_key_app.command("show")
def key_show(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The public key that signs the archive log's checkpoints (made now if there is none
    yet): auditors pin it, and check exports and checkpoints with it."""
    with services_of(ctx, as_json) as services:
        key = services.archive_keys.ensure_active(new_log_key)
    result = {"key_id": key.key_id, "algorithm": "ed25519", "public_key": key.public_key}

    def human() -> None:
        out.print(f"Ed25519 public key {key.key_id}:", highlight=False)
        out.print(key.public_key, highlight=False)

    emit(result, as_json, human)


@archive_app.command("checkpoint")
def checkpoint(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Append every committed record to the log and sign its head now (`serve` does it
    every [archive] checkpoint_interval seconds)."""
    with services_of(ctx, as_json) as services:
        key = services.archive_keys.ensure_active(new_log_key)
        run = Checkpointer(services.database, key, services.clock).run_once()
    result: dict[str, object] = {"appended": run.appended, "checkpoint": None}
    if run.checkpoint is not None:
        result["checkpoint"] = checkpoint_json(run.checkpoint)

    def human() -> None:
        if run.checkpoint is None:
            out.print("The log is up to date: nothing to sign.")
        else:
            out.print(
                f"{run.appended} appended; checkpoint at size {run.checkpoint.tree_size}, "
                f"root {run.checkpoint.root_hash.hex()}",
                highlight=False,
            )

    emit(result, as_json, human)


def checkpoint_json(checkpoint: SignedCheckpoint) -> dict[str, object]:
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash.hex(),
        "signed_at": checkpoint.signed_at.isoformat(),
        "key_id": checkpoint.key_id,
        "signature": base64.b64encode(checkpoint.signature).decode("ascii"),
    }


@archive_app.command("verify")
def verify(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Check every stored message against the log: each body's bytes, each record's leaf,
    the tree, and each checkpoint's root and signature. Exit 0: all holds; 1: the first
    problems found are named."""
    with services_of(ctx, as_json) as services, Progress(console=err, disable=as_json) as bar:
        tasks: dict[str, TaskID] = {}

        def step(what: str, count: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(f"checking {what}", total=None)
            bar.advance(tasks[what], count)

        report = verify_archive(services.database, services.archive_keys.public_keys(), step)
    result = {
        "ok": report.ok,
        "records": report.records,
        "bodies": report.bodies,
        "checkpoints": report.checkpoints,
        "tree_size": report.tree_size,
        "root_hash": report.root,
        "unlogged": report.unlogged,
        "problems": report.problems,
    }

    summary = (
        f"archive {'verified' if report.ok else 'FAILED'}: {report.records} records, "
        f"{report.bodies} bodies, {report.checkpoints} checkpoints; log size "
        f"{report.tree_size}, root {report.root}"
    )
    if report.unlogged:
        summary += f"\n{report.unlogged} committed records await the next checkpoint"
    _verdict(result, as_json, summary, report.problems)


def _verdict(result: dict[str, object], as_json: bool, summary: str, problems: list[str]) -> None:
    """A check's result; exit 1 if it found problems, each named."""

    def human() -> None:
        out.print(summary, highlight=False)
        for problem in problems:
            err.print(f"  {problem}", markup=False, highlight=False)

    emit(result, as_json, human)
    if problems:
        raise typer.Exit(1)


@archive_app.command("export")
def export(
    ctx: typer.Context,
    out_path: Annotated[Path, typer.Option("--out", help="The zip to write.")],
    pair: Annotated[int | None, typer.Option("--pair", help="Every message of a pair.")] = None,
    order_ref: Annotated[
        str | None, typer.Option("--order-ref", help="Every message of an order's pair.")
    ] = None,
    ids: Annotated[str | None, typer.Option("--ids", help="Archive ids, comma-separated.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Messages as .eml (as received and as delivered) with their records, inclusion proofs
    and the signed checkpoint: `archive verify-export` checks the zip offline."""
    chosen = [name for name, value in (("--pair", pair), ("--order-ref", order_ref),
                                       ("--ids", ids)) if value is not None]  # fmt: skip
    if len(chosen) != 1:
        fail("name the messages with one of --pair, --order-ref or --ids", as_json)
    try:
        id_list = [int(part) for part in ids.split(",")] if ids else []
    except ValueError:
        fail(f"--ids {ids!r}: archive ids are numbers, comma-separated", as_json)
    with services_of(ctx, as_json) as services:
        key = services.archive_keys.ensure_active(new_log_key)
        checkpointer = Checkpointer(services.database, key, services.clock)
        try:
            exported = export_bundle(
                services.database,
                checkpointer,
                Selection(pair_id=pair, order_ref=order_ref, ids=id_list),
                out_path,
            )
        except ExportError as error:
            fail(str(error), as_json)
    result = {"messages": exported.messages, "tree_size": exported.tree_size, "out": str(out_path)}

    def human() -> None:
        out.print(
            f"{exported.messages} messages exported to {out_path}, proven against the "
            f"checkpoint at size {exported.tree_size}",
            highlight=False,
        )

    emit(result, as_json, human)


@archive_app.command("verify-export")
def verify_export(
    bundle: Annotated[Path, typer.Argument(help="A zip made by archive export.")],
    public_key: Annotated[
        str, typer.Option("--public-key", help="The archive's key (archive key show).")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Check an export offline: the checkpoint's signature, each record's place in the
    signed log, and each message's bytes. Exit 0: it holds; 1: what fails is named."""
    check = verify_bundle(bundle, public_key)
    result = {
        "ok": check.ok,
        "messages": check.messages,
        "tree_size": check.tree_size,
        "problems": check.problems,
    }

    summary = (
        f"export {'verified' if check.ok else 'FAILED'}: {check.messages} messages against "
        f"the checkpoint at size {check.tree_size}"
    )
    _verdict(result, as_json, summary, check.problems)


@archive_app.command("hold")
def hold(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option("--reason", help="Why (a dispute, a request).")],
    pair: Annotated[int | None, typer.Option("--pair", help="A pair's records.")] = None,
    seller: Annotated[int | None, typer.Option("--seller", help="A seller's records.")] = None,
    buyer: Annotated[str | None, typer.Option("--buyer", help="A buyer's, by address.")] = None,
    order_ref: Annotated[
        str | None, typer.Option("--order-ref", help="The records of an order's pair.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Keep records past their retention until the hold is released."""
    given = {
        "pair": pair,
        "seller": seller,
        "buyer": buyer,
        "order": order_ref,
    }
    chosen = [(scope, value) for scope, value in given.items() if value is not None]
    if len(chosen) != 1:
        fail("name what to hold with one of --pair, --seller, --buyer or --order-ref", as_json)
    [(scope, value)] = chosen
    with services_of(ctx, as_json) as services:
        try:
            with services.database.writing() as connection:
                hold_id = retention.place_hold(
                    connection, scope, str(value), reason, services.clock.now()
                )
        except retention.HoldError as error:
            fail(str(error), as_json)
    result = {"hold_id": hold_id, "scope": scope, "value": str(value)}
    emit(result, as_json, lambda: out.print(f"hold {hold_id} placed on {scope} {value}"))


@archive_app.command("release")
def release(
    ctx: typer.Context,
    hold_id: Annotated[int, typer.Argument(help="The hold (archive holds).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it ends.")],
    as_json: JsonFlag = False,
) -> None:
    """End a legal hold: what it kept may be purged from then on."""
    with services_of(ctx, as_json) as services:
        try:
            with services.database.writing() as connection:
                retention.release_hold(connection, hold_id, reason, services.clock.now())
        except retention.HoldError as error:
            fail(str(error), as_json)
    emit({"hold_id": hold_id, "released": True}, as_json, lambda: out.print("released"))


@archive_app.command("holds")
def list_holds(
    ctx: typer.Context,
    released: Annotated[bool, typer.Option("--released", help="Released ones too.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The legal holds in force (and released ones with --released)."""
    with services_of(ctx, as_json) as services, services.database.read_connection() as c:
        found = retention.holds(c, include_released=released)
    rows = [
        {
            "hold_id": h.id,
            "scope": h.scope,
            "value": h.value,
            "reason": h.reason,
            "placed_at": h.placed_at.isoformat(),
            "released_at": h.released_at.isoformat() if h.released_at else None,
            "release_reason": h.release_reason,
        }
        for h in found
    ]

    def human() -> None:
        table = Table("hold", "scope", "value", "reason", "placed", "released")
        for row in rows:
            table.add_row(
                str(row["hold_id"]), str(row["scope"]), str(row["value"]),
                str(row["reason"]), str(row["placed_at"]), str(row["released_at"] or ""),
            )  # fmt: skip
        out.print(table)

    emit({"holds": rows}, as_json, human)


@archive_app.command("purge")
def purge(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what may go; purge nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Purge the records past [archive] retention_days that no hold keeps and no queued
    delivery needs: their bytes and addresses go, a tombstone keeps each leaf. Safe to
    interrupt and run again."""
    with services_of(ctx, as_json) as services:
        purger = Purger(services.database, services.clock, services.settings.archive.retention_days)
        due = purger.due()
        if dry_run:
            emit({"due": due, "purged": 0}, as_json, lambda: out.print(f"{due} may be purged"))
            return
        with Progress(console=err, disable=as_json) as bar:
            task = bar.add_task("purging", total=due)
            done = purger.run(lambda count: bar.advance(task, count))
    result = {"due": due, "purged": done.records, "bodies": done.bodies, "batches": done.batches}
    emit(
        result,
        as_json,
        lambda: out.print(f"{done.records} records purged, {done.bodies} bodies deleted"),
    )
