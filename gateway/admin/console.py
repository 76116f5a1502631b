"""The auditor console: server-rendered pages over the archive for the marketplace's dispute
staff. Search, conversations, each message as received and as delivered, .eml and signed
export downloads; operators also place and release legal holds and start a purge.

Every page needs a login (a session cookie: HttpOnly, SameSite=Strict, Secure over TLS);
every form carries the session's CSRF token; failed logins are throttled as SMTP AUTH is.
Every request an auditor makes is kept in the access log, itself a record of the archive's
Merkle log. Handlers are plain functions: FastAPI runs them on its worker threads, so the
database never blocks the gateway's event loop."""

# No "from __future__ import annotations": FastAPI reads these annotations at run time.

import secrets
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.audit.checkpointer import Checkpointer
from gateway.audit.export import ExportError, Selection, export_bundle
from gateway.audit.purge import Purger
from gateway.audit.view import read_conversation, read_record
from gateway.core.clock import Clock
from gateway.core.terms import query_phrases
from gateway.storage import archive, archive_log, retention
from gateway.storage.auditors import Account, AuditorStore, Login
from gateway.storage.client_failures import FailureThrottle
from gateway.storage.database import Database
from gateway.storage.schema import Message
from gateway.storage.search import SearchQuery, SearchResult, search

SESSION_COOKIE = "bsm_session"
LOGIN_COOKIE = "bsm_login"  # the login form's CSRF token, before there is a session
PAGE = 50
_HERE = Path(__file__).parent
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    session_lifetime: timedelta
    secure_cookies: bool  # served over TLS
    retention_days: int


class _NeedsLogin(Exception):
    pass


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_console(
    database: Database,
    auditors: AuditorStore,
    checkpointer: Checkpointer,
    throttle: FailureThrottle,
    clock: Clock,
    config: ConsoleConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> FastAPI:
    app = FastAPI(title="bsm-gateway auditor console", docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip
    templates = Jinja2Templates(directory=_HERE / "templates")
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")

    def cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, samesite="strict",
            secure=config.secure_cookies, path="/",
        )  # fmt: skip

    def logged_in(request: Request) -> Login:
        token = request.cookies.get(SESSION_COOKIE)
        login = auditors.session(token) if token else None
        if login is None:
            raise _NeedsLogin
        return login

    Session = Annotated[Login, Depends(logged_in)]

    def checked(login: Login, csrf_token: str) -> None:
        if not secrets.compare_digest(csrf_token.encode(), login.csrf_token.encode()):
            raise _Refused(403, "This form has expired: open the page again and resend it.")

    def operator(login: Login, csrf_token: str, action: str) -> None:
        """An operator's action; an auditor who asks for one is refused, and that is kept."""
        checked(login, csrf_token)
        if not login.account.is_operator:
            accessed(login.account, "refused", {"asked": action}, [])
            raise _Refused(403, "Only an operator may do this.")

    def accessed(
        account: Account, action: str, asked: Mapping[str, Any], records: Sequence[int]
    ) -> None:
        with database.writing() as connection:
            archive_log.record_access(connection, account.name, clock.now(), action, asked, records)

    def page(
        request: Request, template: str, login: Login | None, status: int = 200, **values: Any
    ) -> HTMLResponse:
        response = templates.TemplateResponse(
            request, template, {"login": login, **values}, status_code=status
        )
        response.headers.update(_SECURITY_HEADERS)
        return response

    @app.exception_handler(_NeedsLogin)
    def _to_login(request: Request, error: _NeedsLogin) -> Response:
        if request.method == "GET" and not request.url.path.endswith((".eml", ".zip")):
            return RedirectResponse("/login", status_code=303, headers=_SECURITY_HEADERS)
        return Response("Log in first.\n", status_code=401, headers=_SECURITY_HEADERS)

    @app.exception_handler(_Refused)
    def _refused(request: Request, error: _Refused) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        login = auditors.session(token) if token else None
        return page(request, "error.html", login, error.status, message=str(error))

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        return Response(str(error.detail), status_code=error.status_code,
                        headers=_SECURITY_HEADERS)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    def _incomplete(request: Request, error: RequestValidationError) -> Response:
        return _refused(request, _Refused(400, "The form is incomplete: fill in every field."))

    # -- logging in and out -------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        token = secrets.token_urlsafe(32)
        response = page(request, "login.html", None, csrf_token=token, error=None)
        cookie(response, LOGIN_COOKIE, token, 3600)
        return response

    @app.post("/login", response_class=HTMLResponse)
    def login(
        request: Request,
        name: Annotated[str, Form()],
        password: Annotated[str, Form()],
        csrf_token: Annotated[str, Form()],
    ) -> Response:
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not secrets.compare_digest(csrf_token.encode(), expected.encode()):
            raise _Refused(403, "This form has expired: open the login page again.")
        client = request.client.host if request.client else "unknown"
        keys = [f"client:{client}", f"user:{name.lower()}"]

        def again(status: int, error: str) -> Response:
            response = page(request, "login.html", None, status, csrf_token=expected,
                            error=error)  # fmt: skip
            return response

        if throttle.locked(keys):
            return again(429, "Too many failed logins: try again later.")
        account = auditors.check_password(name.lower(), password)
        if account is None:
            delay, _ = throttle.failed(keys)
            sleep(delay)
            return again(401, "Wrong name or password.")
        token, _ = auditors.open_session(account, config.session_lifetime)
        accessed(account, "login", {}, [])
        response = RedirectResponse("/", status_code=303, headers=_SECURITY_HEADERS)
        cookie(response, SESSION_COOKIE, token, int(config.session_lifetime.total_seconds()))
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout")
    def logout(request: Request, login: Session, csrf_token: Annotated[str, Form()]) -> Response:
        checked(login, csrf_token)
        auditors.close_session(request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/login", status_code=303, headers=_SECURITY_HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- reading the archive ----------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def search_page(request: Request, login: Session) -> Response:
        form = {k: v.strip() for k, v in request.query_params.items() if v.strip()}
        query = _query(form)
        result: SearchResult | None = None
        if query is not None:
            with database.read_connection() as connection:
                result = search(connection, query)
            accessed(login.account, "search", query.asked(),
                     [found.message_id for found in result.results])  # fmt: skip
        more = None
        if result is not None and query is not None:
            shown = query.offset + len(result.results)
            if shown < result.total:
                more = {**form, "offset": str(shown)}
        return page(request, "search.html", login, form=form, result=result, more=more)

    @app.get("/messages/{message_id}", response_class=HTMLResponse)
    def message_page(request: Request, login: Session, message_id: int) -> Response:
        with database.read_connection() as connection:
            record = read_record(connection, message_id)
        if record is None:
            raise _Refused(404, f"There is no archive record {message_id}.")
        accessed(login.account, "view", {"message_id": message_id}, [message_id])
        return page(request, "message.html", login, record=record)

    @app.get("/messages/{message_id}/{version}.eml")
    def message_file(login: Session, message_id: int, version: str) -> Response:
        if version not in ("received", "delivered"):
            raise _Refused(404, "A message is kept as received and as delivered.")
        with database.read_connection() as connection:
            found = archive.read_records(connection, Message.id == message_id)
        raw = None
        if found:
            raw = found[0].raw_received if version == "received" else found[0].raw_delivered
        if raw is None:
            raise _Refused(404, f"Archive record {message_id} keeps no message {version}.")
        accessed(login.account, "download", {"message_id": message_id, "version": version},
                 [message_id])  # fmt: skip
        return _download(raw, "message/rfc822", f"archive-{message_id}-{version}.eml")

    @app.get("/pairs/{pair_id}", response_class=HTMLResponse)
    def conversation_page(request: Request, login: Session, pair_id: int) -> Response:
        with database.read_connection() as connection:
            records = read_conversation(connection, pair_id)
        accessed(login.account, "conversation", {"pair_id": pair_id},
                 [r.message_id for r in records])  # fmt: skip
        return page(request, "conversation.html", login, pair_id=pair_id, records=records)

    @app.get("/pairs/{pair_id}/export.zip")
    def export_pair(login: Session, pair_id: int) -> Response:
        with tempfile.TemporaryDirectory(prefix="bsm-export-") as folder:
            path = Path(folder) / f"pair-{pair_id}.zip"
            try:
                exported = export_bundle(database, checkpointer, Selection(pair_id=pair_id), path)
            except ExportError as error:
                raise _Refused(404, str(error)) from None
            data = path.read_bytes()
        with database.read_connection() as connection:
            ids = archive.message_ids(connection, pair_id=pair_id)
        accessed(login.account, "export", {"pair_id": pair_id, "tree_size": exported.tree_size},
                 ids)  # fmt: skip
        return _download(data, "application/zip", f"archive-pair-{pair_id}.zip")

    # -- legal holds and the purge (operators) ----------------------------------------

    @app.get("/holds", response_class=HTMLResponse)
    def holds_page(request: Request, login: Session) -> Response:
        with database.read_connection() as connection:
            found = retention.holds(connection, include_released=True)
        accessed(login.account, "holds", {}, [])
        return page(request, "holds.html", login, holds=found, scopes=retention.SCOPES,
                    notice=request.query_params.get("notice"))  # fmt: skip

    @app.post("/holds")
    def place_hold(
        login: Session,
        csrf_token: Annotated[str, Form()],
        scope: Annotated[str, Form()],
        value: Annotated[str, Form()],
        reason: Annotated[str, Form()],
    ) -> Response:
        operator(login, csrf_token, "hold")
        try:
            with database.writing() as connection:
                hold_id = retention.place_hold(connection, scope, value, reason, clock.now())
        except retention.HoldError as error:
            raise _Refused(400, str(error)) from None
        accessed(login.account, "hold", {"hold_id": hold_id, "scope": scope, "value": value,
                                         "reason": reason}, [])  # fmt: skip
        return RedirectResponse(f"/holds?notice=Hold+{hold_id}+placed", status_code=303)

    @app.post("/holds/{hold_id}/release")
    def release_hold(
        login: Session,
        hold_id: int,
        csrf_token: Annotated[str, Form()],
        reason: Annotated[str, Form()],
    ) -> Response:
        operator(login, csrf_token, "release")
        try:
            with database.writing() as connection:
                retention.release_hold(connection, hold_id, reason, clock.now())
        except retention.HoldError as error:
            raise _Refused(400, str(error)) from None
        accessed(login.account, "release", {"hold_id": hold_id, "reason": reason}, [])
        return RedirectResponse(f"/holds?notice=Hold+{hold_id}+released", status_code=303)

    @app.post("/purge")
    def purge(login: Session, csrf_token: Annotated[str, Form()]) -> Response:
        operator(login, csrf_token, "purge")
        done = Purger(database, clock, config.retention_days).run()
        accessed(login.account, "purge", {"purged": done.records}, [])
        notice = f"{done.records}+records+purged"
        return RedirectResponse(f"/holds?notice={notice}", status_code=303)

    return app


def _download(data: bytes, media_type: str, filename: str) -> Response:
    disposition = f'attachment; filename="{filename}"'
    headers = {**_SECURITY_HEADERS, "Content-Disposition": disposition}
    return Response(data, media_type=media_type, headers=headers)


def _day(text: str, name: str) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise _Refused(400, f"{name}: a day, as 2026-11-30") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _number(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise _Refused(400, f"{name}: a number")
    return int(text)


def _query(form: Mapping[str, str]) -> SearchQuery | None:
    """The search a form asks for (None: it asks for nothing yet)."""
    asked = set(form) - {"offset"}
    if not asked:
        return None
    until = _day(form["until"], "until") + timedelta(days=1) if "until" in form else None
    phrases = tuple(query_phrases(form["text"])) if "text" in form else ()
    direction = form.get("direction")
    if direction not in (None, "seller_to_buyer", "buyer_to_seller"):
        raise _Refused(400, "direction: seller to buyer, or buyer to seller")
    verdict = form.get("verdict")
    if verdict not in (None, "accepted", "refused"):
        raise _Refused(400, "verdict: accepted or refused")
    return SearchQuery(
        seller_id=_number(form.get("seller"), "seller"),
        buyer=form.get("buyer"),
        alias=form.get("alias"),
        pair_id=_number(form.get("pair"), "pair"),
        order_ref=form.get("order_ref"),
        direction=direction,
        since=_day(form["since"], "since") if "since" in form else None,
        until=until,
        verdict=verdict,
        rule=form.get("rule"),
        phrases=phrases,
        limit=PAGE,
        offset=_number(form.get("offset"), "offset") or 0,
    )
