"""The archive's signed log: its key, a checkpoint now, and the verification of it all."""

from __future__ import annotations

import base64

import typer
from rich.progress import Progress, TaskID

from gateway.audit.checkpointer import Checkpointer
from gateway.audit.signing import new_log_key
from gateway.audit.verify import verify_archive
from gateway.cli.common import JsonFlag, archive_app, archive_key_app, emit, err, out, services_of
from gateway.core.records import SignedCheckpoint


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

    def human() -> None:
        verdict = "verified" if report.ok else "FAILED"
        out.print(
            f"archive {verdict}: {report.records} records, {report.bodies} bodies, "
            f"{report.checkpoints} checkpoints; log size {report.tree_size}, "
            f"root {report.root}",
            highlight=False,
        )
        if report.unlogged:
            out.print(f"{report.unlogged} committed records await the next checkpoint")
        for problem in report.problems:
            err.print(f"  {problem}", markup=False, highlight=False)

    emit(result, as_json, human)
    if not report.ok:
        raise typer.Exit(1)
