"""Auditor console accounts, and the access log of what auditors asked and saw."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.common import JsonFlag, archive_app, auditor_app, emit, fail, out, services_of
from gateway.storage import archive_log
from gateway.storage.auditors import ROLES, AuditorError, AuditorStore


@auditor_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The login name (lower case).")],
    role: Annotated[
        str, typer.Option("--role", help="auditor (reads) or operator (also holds, purges).")
    ] = "auditor",
    as_json: JsonFlag = False,
) -> None:
    """Make an account; its password is printed once, only its argon2id hash is kept."""
    if role not in ROLES:
        fail(f"--role is one of {', '.join(ROLES)}", as_json)
    with services_of(ctx, as_json) as services:
        try:
            made = AuditorStore(services.database, services.clock).add(name, role)
        except AuditorError as error:
            fail(str(error), as_json)
    result = {"name": made.account.name, "role": made.account.role, "password": made.password}

    def human() -> None:
        out.print(f"{made.account.role} {made.account.name} added; password (shown once):")
        out.print(made.password, highlight=False, markup=False)

    emit(result, as_json, human)


@auditor_app.command("disable")
def disable(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The account.")],
    as_json: JsonFlag = False,
) -> None:
    """No more logins for the account; its open sessions end now."""
    with services_of(ctx, as_json) as services:
        try:
            AuditorStore(services.database, services.clock).disable(name)
        except AuditorError as error:
            fail(str(error), as_json)
    emit({"name": name, "disabled": True}, as_json, lambda: out.print(f"{name} disabled"))


@auditor_app.command("list")
def list_accounts(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every account, enabled or not."""
    with services_of(ctx, as_json) as services:
        accounts = AuditorStore(services.database, services.clock).accounts()
    rows = [
        {"name": a.name, "role": a.role, "disabled_at": d.isoformat() if d else None}
        for a, d in accounts
    ]

    def human() -> None:
        table = Table("name", "role", "disabled")
        for row in rows:
            table.add_row(str(row["name"]), str(row["role"]), str(row["disabled_at"] or ""))
        out.print(table)

    emit({"auditors": rows}, as_json, human)


@archive_app.command("access-log")
def access_log(
    ctx: typer.Context,
    auditor: Annotated[str | None, typer.Option("--auditor", help="One account's.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 100,
    as_json: JsonFlag = False,
) -> None:
    """What auditors asked the console and which records it showed them, newest first.
    Each request is a record of the archive log (`log_seq`), so none can be altered."""
    with services_of(ctx, as_json) as services, services.database.read_connection() as c:
        found = archive_log.accesses(c, auditor, limit)
    rows = [
        {"id": a.id, "auditor": a.auditor, "at": a.at.isoformat(), "action": a.action,
         "query": a.query, "records": a.records, "log_seq": a.log_seq}
        for a in found
    ]  # fmt: skip

    def human() -> None:
        table = Table("at", "auditor", "action", "query", "records", "leaf")
        for a in found:
            shown = ", ".join(str(i) for i in a.records[:8]) + (
                " ..." if len(a.records) > 8 else ""
            )
            table.add_row(
                a.at.strftime("%Y-%m-%d %H:%M:%S"), a.auditor, a.action,
                " ".join(f"{k}={v}" for k, v in a.query.items()), shown,
                str(a.log_seq if a.log_seq is not None else "pending"),
            )  # fmt: skip
        out.print(table)

    emit({"accesses": rows}, as_json, human)
