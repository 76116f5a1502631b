"""Requests of the admin surface, validated the same way for the CLI and the HTTP API."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from gateway.core.addresses import AddressError, normalise


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrderRow(_Request):
    """One order as the marketplace exports it (a CSV row or a JSON line)."""

    seller: Annotated[int, Field(ge=1, description="seller id")]
    buyer: Annotated[str, Field(description="the buyer's real mailbox")]
    order_ref: Annotated[str, Field(min_length=1, max_length=100)]
    placed_at: Annotated[AwareDatetime, Field(description="ISO 8601 with a zone")]

    @field_validator("buyer")
    @classmethod
    def _buyer_is_a_mailbox(cls, value: str) -> str:
        try:
            normalise(value)
        except AddressError as error:
            raise ValueError(str(error)) from None
        return value


class BuyerRequest(_Request):
    address: Annotated[str, Field(description="the buyer's real mailbox")]


class PrePurchaseRequest(_Request):
    allowed: bool


class VacationRequest(_Request):
    starts_at: AwareDatetime
    ends_at: AwareDatetime


def first_error(error: Exception) -> str:
    """One line for a validation error: the field and what is wrong with it."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return str(error)
    first = errors()[0]
    # The HTTP API locates errors in the request ("body", "query", "path"); the field is
    # what the CLI names too.
    location = [str(part) for part in first["loc"]]
    if len(location) > 1 and location[0] in ("body", "query", "path"):
        location = location[1:]
    where = ".".join(location) or "row"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"
