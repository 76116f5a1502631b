"""Mailbox sources (IMAP ingest): their state."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from gateway.cli.common import JsonFlag, app, emit, out, services_of

imap_app = typer.Typer(no_args_is_help=True, help="Mailbox sources the gateway fetches from.")
app.add_typer(imap_app, name="imap")


@imap_app.command("status")
def imap_status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Each source: which process polls it, in which state, what it took in."""
    with services_of(ctx, as_json) as services:
        sources = services.imap_status()

    def human() -> None:
        if not sources:
            out.print("No mailbox sources: [[imap.sources]] names none.", markup=False)
            return
        table = Table("source", "server / folder", "state", "polled by", "taken", "last ok")
        for source in sources:
            where = f"{source.get('server', '-')} {source.get('folder', '')}".strip()
            state = source["state"]
            if source.get("detail"):
                state = f"{state}: {source['detail']}"
            cells = (
                source["name"],
                where if source["configured"] else "(not configured)",
                state,  # a server's words, e.g. "[AUTHENTICATIONFAILED] ...": not markup
                source.get("polled_by") or "-",
                str(source["taken"]),
                source.get("last_ok_at") or "-",
            )
            table.add_row(*(Text(cell) for cell in cells))
        out.print(table)

    emit({"sources": sources}, as_json, human)
