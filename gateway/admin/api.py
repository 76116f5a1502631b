"""The HTTP admin API of the marketplace backend: the CLI's registry operations and reports,
as JSON, behind a bearer token. FastAPI serves its OpenAPI document at /openapi.json."""

# No "from __future__ import annotations": FastAPI reads these annotations at run time.

import secrets
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.admin.orders import RowError, import_orders
from gateway.admin.schemas import (
    BuyerRequest,
    OrderRow,
    PrePurchaseRequest,
    VacationRequest,
    first_error,
)
from gateway.admin.views import important_share, response_summary
from gateway.storage.registry import Registry, RegistryError
from gateway.storage.reports import ReportError, Reports


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(
    registry: Registry,
    reports: Reports,
    token: str,
    important_threshold: float,
    imap_status: Callable[[], list[dict[str, Any]]] = list,
) -> FastAPI:
    """`imap_status`: each mailbox source's state (the composition knows them)."""
    bearer = HTTPBearer(auto_error=False)

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise ApiError(401, "a valid bearer token is required")

    app = FastAPI(
        title="bsm-gateway admin API",
        version="1",
        description="Orders, opt-outs, suspensions, vacations and reports of bsm-gateway.",
        dependencies=[Depends(authorised)],
    )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return JSONResponse({"error": str(error)}, status_code=error.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # Unknown routes and methods, in the API's one error shape.
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": first_error(error)}, status_code=422)

    def registry_call(call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except RegistryError as error:
            text = str(error)
            status = 404 if text.startswith("no ") else 409 if "already" in text else 400
            raise ApiError(status, text) from None

    @app.post("/v1/orders", status_code=201)
    def add_order(order: OrderRow) -> dict[str, Any]:
        view = registry_call(
            registry.import_order, order.seller, order.buyer, order.order_ref, order.placed_at
        )
        return {"order_id": view.order_id, "created": view.created, **asdict(view.pair)}

    @app.post("/v1/orders/import")
    def import_order_list(rows: list[dict[str, Any]]) -> dict[str, object]:
        """Like `order import`: each row on its own; "line" is its position in the list."""

        def validated() -> Any:
            for line, values in enumerate(rows, start=1):
                try:
                    yield line, OrderRow.model_validate(values)
                except ValidationError as error:
                    yield line, RowError(line, first_error(error))

        return import_orders(registry, validated()).as_dict()

    @app.post("/v1/buyers/opt-out")
    def opt_out(buyer: BuyerRequest) -> dict[str, object]:
        return _opted(registry_call(registry.set_opted_out, buyer.address, True), True)

    @app.post("/v1/buyers/opt-in")
    def opt_in(buyer: BuyerRequest) -> dict[str, object]:
        return _opted(registry_call(registry.set_opted_out, buyer.address, False), False)

    @app.post("/v1/sellers/{seller_id}/suspend")
    def suspend(seller_id: int) -> dict[str, object]:
        changed = registry_call(registry.set_suspended, seller_id, True)
        return {"seller_id": seller_id, "suspended": True, "changed": changed}

    @app.post("/v1/sellers/{seller_id}/reinstate")
    def reinstate(seller_id: int) -> dict[str, object]:
        changed = registry_call(registry.set_suspended, seller_id, False)
        return {"seller_id": seller_id, "suspended": False, "changed": changed}

    @app.post("/v1/sellers/{seller_id}/vacations", status_code=201)
    def vacation(seller_id: int, period: VacationRequest) -> dict[str, object]:
        vacation_id = registry_call(
            registry.add_vacation, seller_id, period.starts_at, period.ends_at
        )
        return {
            "vacation_id": vacation_id,
            "seller_id": seller_id,
            "starts_at": period.starts_at.isoformat(),
            "ends_at": period.ends_at.isoformat(),
        }

    @app.put("/v1/sellers/{seller_id}/pre-purchase")
    def pre_purchase(seller_id: int, setting: PrePurchaseRequest) -> dict[str, object]:
        registry_call(registry.set_pre_purchase, seller_id, setting.allowed)
        return {"seller_id": seller_id, "pre_purchase": setting.allowed}

    @app.post("/v1/messages/{message}/no-response-needed")
    def no_response_needed(message: str) -> dict[str, object]:
        try:
            message_id = reports.no_response_needed(message)
        except ReportError as error:
            status = 404 if str(error).startswith("no message") else 400
            raise ApiError(status, str(error)) from None
        return {"message_id": message_id, "no_response_needed": True}

    @app.get("/v1/imap/sources")
    def imap_sources() -> dict[str, Any]:
        """Each mailbox source: which process polls it, its state, what it took in."""
        return {"sources": imap_status()}

    @app.get("/v1/reports/response-times")
    def response_times(
        seller: int | None = None, since: AwareDatetime | None = None
    ) -> dict[str, object]:
        summaries = reports.response_times(seller, since)
        return {"sellers": [response_summary(s) for s in summaries]}

    @app.get("/v1/reports/important")
    def important(
        threshold: float | None = None, since: AwareDatetime | None = None
    ) -> dict[str, object]:
        limit = important_threshold if threshold is None else threshold
        return {
            "threshold": limit,
            "sellers": [
                important_share(s) for s in reports.important_shares(since) if s.share > limit
            ],
        }

    return app


def _opted(result: tuple[int, bool], opted_out: bool) -> dict[str, object]:
    buyer_id, changed = result
    return {"buyer_id": buyer_id, "opted_out": opted_out, "changed": changed}
