"""Reports as JSON objects: one shape for the CLI's --json and the HTTP API."""

from __future__ import annotations

from gateway.core.response_times import ResponseSummary
from gateway.storage.reports import ImportantShare


def hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def response_summary(summary: ResponseSummary) -> dict[str, object]:
    return {
        "seller_id": summary.seller_id,
        "seller": summary.seller_name,
        "buyer_messages": summary.waits,
        "average_response_hours": hours(summary.average_seconds),
        "answered_within_24h": summary.share(summary.answered_in_time),
        "answered_later": summary.share(summary.answered_late),
        "unanswered": summary.share(summary.unanswered),
        "no_response_needed": summary.no_response_needed,
    }


def important_share(share: ImportantShare) -> dict[str, object]:
    return {
        "seller_id": share.seller_id,
        "seller": share.seller_name,
        "messages": share.messages,
        "important": share.important,
        "share": round(share.share, 4),
    }
