"""Finding records in the archive: search with filters and full text, and one record shown
whole."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from gateway.audit.checkpointer import Checkpointer
from gateway.audit.indexer import bring_up_to_date
from gateway.audit.signing import new_log_key
from gateway.audit.view import read_record
from gateway.cli.common import JsonFlag, archive_app, emit, fail, out, parse_time, services_of
from gateway.core.terms import query_phrases
from gateway.storage.search import SearchQuery, SearchResult, search

DIRECTIONS = ("seller-to-buyer", "buyer-to-seller")
VERDICTS = ("accepted", "refused")


def _moment(text: str | None, option: str, as_json: bool) -> datetime | None:
    """A time option: a day (2026-11-01, midnight UTC) or an ISO 8601 time with a zone."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return parse_time(text, option, as_json)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def search_json(result: SearchResult) -> dict[str, Any]:
    return {
        "total": result.total,
        "exact": result.exact,
        "results": [
            {
                "message_id": found.message_id,
                "pair_id": found.pair_id,
                "direction": found.direction.replace("_", "-"),
                "received_at": found.received_at.isoformat(),
                "verdict": found.verdict,
                "rules": list(found.rules),
                "subject": found.subject,
            }
            for found in result.results
        ],
    }


@archive_app.command("search")
def search_command(
    ctx: typer.Context,
    seller: Annotated[int | None, typer.Option("--seller", help="A seller's id.")] = None,
    buyer: Annotated[str | None, typer.Option("--buyer", help="A buyer's address.")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="An alias address.")] = None,
    pair: Annotated[int | None, typer.Option("--pair", help="A pair's id.")] = None,
    order_ref: Annotated[str | None, typer.Option("--order-ref", help="An order.")] = None,
    direction: Annotated[
        str | None, typer.Option("--direction", help="seller-to-buyer or buyer-to-seller.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="Received at or after.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Received before.")] = None,
    verdict: Annotated[str | None, typer.Option("--verdict", help="accepted or refused.")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="A rule that refused it.")] = None,
    words: Annotated[
        str | None, typer.Option("--text", help="Words of the subject or text, in any language.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Records matching every filter given, newest first."""
    if direction is not None and direction not in DIRECTIONS:
        fail(f"--direction is one of {', '.join(DIRECTIONS)}", as_json)
    if verdict is not None and verdict not in VERDICTS:
        fail(f"--verdict is one of {', '.join(VERDICTS)}", as_json)
    phrases = tuple(query_phrases(words)) if words is not None else ()
    if words is not None and not phrases:
        fail("--text has no words to look for", as_json)
    query = SearchQuery(
        seller_id=seller, buyer=buyer, alias=alias, pair_id=pair, order_ref=order_ref,
        direction=direction.replace("-", "_") if direction else None,
        since=_moment(since, "--since", as_json), until=_moment(until, "--until", as_json),
        verdict=verdict, rule=rule, phrases=phrases, limit=limit,
    )  # fmt: skip
    with services_of(ctx, as_json) as services:
        key = services.archive_keys.ensure_active(new_log_key)
        bring_up_to_date(services.database, Checkpointer(services.database, key, services.clock))
        with services.database.read_connection() as connection:
            result = search(connection, query)

    def human() -> None:
        table = Table("id", "pair", "direction", "received", "verdict", "rules", "subject")
        for found in result.results:
            table.add_row(
                str(found.message_id), str(found.pair_id or ""),
                found.direction.replace("_", "-"),
                found.received_at.strftime("%Y-%m-%d %H:%M"), found.verdict,
                ", ".join(found.rules), found.subject or "",
            )  # fmt: skip
        out.print(table)
        shown = len(result.results)
        out.print(f"{shown} of {result.total}{'' if result.exact else '+'} shown", style="dim")

    emit(search_json(result), as_json, human)


@archive_app.command("show")
def show(
    ctx: typer.Context,
    message_id: Annotated[int, typer.Argument(help="The archive id (archive search).")],
    as_json: JsonFlag = False,
) -> None:
    """One record whole: its decision, the rules that hit and what they quoted, and the
    message as received and as delivered."""
    with services_of(ctx, as_json) as services, services.database.read_connection() as c:
        view = read_record(c, message_id)
    if view is None:
        fail(f"archive record {message_id}: no such record", as_json)
    result = view.to_json()

    def human() -> None:
        summary = Table(title=f"archive record {view.message_id}", show_header=False)
        for name in ("pair_id", "direction", "received_at", "verdict", "reply", "rules",
                     "shadow_rules", "policy_version", "gateway_message_id", "log_seq",
                     "purged"):  # fmt: skip
            summary.add_row(name, str(result[name]))
        out.print(summary)
        for label, version in (("as received", view.received), ("as delivered", view.delivered)):
            if version is None:
                out.print(f"\n[bold]{label}[/]: not kept")
                continue
            out.print(f"\n[bold]{label}[/] ({version.size} bytes)")
            for name, value in version.headers:
                out.print(f"{name}: {value}", markup=False, highlight=False)
            out.print("")
            out.print(version.text, markup=False, highlight=False)

    emit(json.loads(json.dumps(result, default=str)), as_json, human)
