"""What the marketplace tells the gateway about standing: opt-outs, suspensions, vacations,
pre-purchase questions, buyer messages that need no response."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.common import (
    JsonFlag,
    buyer_app,
    emit,
    fail,
    message_app,
    out,
    parse_time,
    registry_of,
    seller_app,
    services_of,
    table,
)
from gateway.storage.reports import ReportError

# -- registry ------------------------------------------------------------------------


@buyer_app.command("opt-out")
def buyer_opt_out(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The buyer's real mailbox.")],
    as_json: JsonFlag = False,
) -> None:
    """The buyer gets only replies, [Important] messages and messages with a contact reason."""
    _set_opted_out(ctx, address, True, as_json)


@buyer_app.command("opt-in")
def buyer_opt_in(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The buyer's real mailbox.")],
    as_json: JsonFlag = False,
) -> None:
    """The buyer gets every message its sellers may send again."""
    _set_opted_out(ctx, address, False, as_json)


def _set_opted_out(ctx: typer.Context, address: str, opted_out: bool, as_json: bool) -> None:
    with registry_of(ctx, as_json) as registry:
        buyer_id, changed = registry.set_opted_out(address, opted_out)
    state = "opted out" if opted_out else "opted in"
    emit(
        {"buyer_id": buyer_id, "opted_out": opted_out, "changed": changed},
        as_json,
        lambda: out.print(f"buyer {buyer_id}: {state}" + ("" if changed else " (already)")),
    )


@seller_app.command("suspend")
def seller_suspend(
    ctx: typer.Context,
    seller_id: Annotated[int, typer.Argument(help="Seller id.")],
    as_json: JsonFlag = False,
) -> None:
    """Refuse everything the seller sends (buyers' messages to it still arrive)."""
    _set_suspended(ctx, seller_id, True, as_json)


@seller_app.command("reinstate")
def seller_reinstate(
    ctx: typer.Context,
    seller_id: Annotated[int, typer.Argument(help="Seller id.")],
    as_json: JsonFlag = False,
) -> None:
    """Lift a suspension."""
    _set_suspended(ctx, seller_id, False, as_json)


def _set_suspended(ctx: typer.Context, seller_id: int, suspended: bool, as_json: bool) -> None:
    with registry_of(ctx, as_json) as registry:
        changed = registry.set_suspended(seller_id, suspended)
    state = "suspended" if suspended else "active"
    emit(
        {"seller_id": seller_id, "suspended": suspended, "changed": changed},
        as_json,
        lambda: out.print(f"seller {seller_id}: {state}" + ("" if changed else " (already)")),
    )


@seller_app.command("vacation")
def seller_vacation(
    ctx: typer.Context,
    seller_id: Annotated[int, typer.Argument(help="Seller id.")],
    starts: Annotated[str, typer.Option("--from", help="ISO 8601 with zone.")],
    ends: Annotated[str, typer.Option("--until", help="ISO 8601 with zone.")],
    as_json: JsonFlag = False,
) -> None:
    """Record a vacation: its time does not count in response times (except for orders
    placed before it began)."""
    begin = parse_time(starts, "--from", as_json)
    end = parse_time(ends, "--until", as_json)
    with registry_of(ctx, as_json) as registry:
        vacation_id = registry.add_vacation(seller_id, begin, end)
    result = {
        "vacation_id": vacation_id,
        "seller_id": seller_id,
        "starts_at": begin.isoformat(),
        "ends_at": end.isoformat(),
    }
    emit(result, as_json, table(f"vacation {vacation_id}", result))


@seller_app.command("pre-purchase")
def seller_pre_purchase(
    ctx: typer.Context,
    seller_id: Annotated[int, typer.Argument(help="Seller id.")],
    allow: Annotated[
        bool, typer.Option("--allow/--refuse", help="Take buyers' questions before an order.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Whether buyers may write to the seller before their first order."""
    with registry_of(ctx, as_json) as registry:
        registry.set_pre_purchase(seller_id, allow)
    word = "takes" if allow else "does not take"
    emit(
        {"seller_id": seller_id, "pre_purchase": allow},
        as_json,
        lambda: out.print(f"seller {seller_id} {word} pre-purchase questions"),
    )


@message_app.command("no-response-needed")
def message_no_response_needed(
    ctx: typer.Context,
    message: Annotated[
        str, typer.Argument(help='Archive id ("accepted ... as N") or gateway Message-ID.')
    ],
    as_json: JsonFlag = False,
) -> None:
    """Close a buyer message's wait without a reply: it leaves the response-time figures."""
    with services_of(ctx, as_json) as services:
        try:
            message_id = services.reports.no_response_needed(message)
        except ReportError as error:
            fail(str(error), as_json)
    emit(
        {"message_id": message_id, "no_response_needed": True},
        as_json,
        lambda: out.print(f"message {message_id}: no response needed"),
    )
