"""Reports: sellers' response times, and their use of [Important]."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gateway.admin.views import hours, important_share, response_summary
from gateway.cli.common import JsonFlag, emit, out, parse_time, report_app, services_of

SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only messages from then on (ISO 8601 with zone).")
]


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


@report_app.command("response-times")
def response_times(
    ctx: typer.Context,
    seller: Annotated[int | None, typer.Option("--seller", help="Only this seller.")] = None,
    since: SinceOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Per seller: average response time, share answered within 24 h, later, not at all."""
    start = parse_time(since, "--since", as_json) if since else None
    with services_of(ctx, as_json) as services:
        summaries = services.reports.response_times(seller, start)
    rows = [response_summary(s) for s in summaries]

    def human() -> None:
        table = Table(title="Response times")
        for column in ("seller", "buyer messages", "average", "within 24 h", "later", "unanswered"):
            table.add_column(column, justify="left" if column == "seller" else "right")
        for s in summaries:
            average = hours(s.average_seconds)
            table.add_row(
                f"{s.seller_id} {s.seller_name}",
                str(s.waits),
                "-" if average is None else f"{average:.1f} h",
                _percent(s.share(s.answered_in_time)),
                _percent(s.share(s.answered_late)),
                _percent(s.share(s.unanswered)),
            )
        out.print(table)

    emit({"sellers": rows}, as_json, human)


@report_app.command("important")
def important(
    ctx: typer.Context,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Share above which a seller is listed (config)."),
    ] = None,
    since: SinceOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Sellers whose share of [Important] messages is above the threshold, for review."""
    start = parse_time(since, "--since", as_json) if since else None
    with services_of(ctx, as_json) as services:
        settings = services.settings
        limit = settings.rules.important_share_threshold if threshold is None else threshold
        shares = services.reports.important_shares(start)
    listed = [s for s in shares if s.share > limit]
    rows = [important_share(s) for s in listed]

    def human() -> None:
        table = Table(title=f"[Important] above {limit:.0%}")
        for column in ("seller", "messages", "[Important]", "share"):
            table.add_column(column, justify="left" if column == "seller" else "right")
        for s in listed:
            table.add_row(
                f"{s.seller_id} {s.seller_name}",
                str(s.messages),
                str(s.important),
                _percent(s.share),
            )
        out.print(table)

    emit({"threshold": limit, "sellers": rows}, as_json, human)
