"""The mail log: one function per event in a message's life. Ids only, never addresses."""

from __future__ import annotations

from gateway.obs.log import get_logger

_log = get_logger("maillog")


def recipient_refused(
    *, rule_id: str, reply_code: int, token: str | None = None, why: str | None = None
) -> None:
    _log.info("rcpt_refused", rule=rule_id, code=reply_code, alias_token=token, why=why)


def sender_refused(*, rule_id: str, seller_id: int) -> None:
    _log.info("sender_refused", rule=rule_id, seller_id=seller_id)


def received(*, message_ids: list[int], size: int, recipients: int, accepted: int) -> None:
    _log.info(
        "received", message_ids=message_ids, size=size, recipients=recipients, accepted=accepted
    )


def refused(*, message_id: int, pair_id: int | None, rules: list[str], code: int) -> None:
    _log.info("refused", message_id=message_id, pair_id=pair_id, rules=rules, code=code)


def queued(*, message_id: int, pair_id: int | None, direction: str) -> None:
    _log.info("queued", message_id=message_id, pair_id=pair_id, direction=direction)


def not_stored(*, error: str) -> None:
    _log.error("not_stored", error=error, reply="451 4.3.0")


def delivered(*, outbound_id: int, message_id: int, attempts: int) -> None:
    _log.info("delivered", outbound_id=outbound_id, message_id=message_id, attempts=attempts)


def deferred(
    *, outbound_id: int, message_id: int, attempts: int, retry_in: float, error: str
) -> None:
    _log.info(
        "deferred",
        outbound_id=outbound_id,
        message_id=message_id,
        attempts=attempts,
        retry_in=round(retry_in, 1),
        error=error,
    )


def bounced(*, outbound_id: int, message_id: int, attempts: int, error: str, notice: bool) -> None:
    _log.warning(
        "bounced",
        outbound_id=outbound_id,
        message_id=message_id,
        attempts=attempts,
        error=error,
        dsn_sent=notice,
    )
