"""Running the gateway: serve, the health check, the schema."""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import urllib.error
import urllib.request
from typing import Annotated

import typer

from gateway.cli.common import (
    JsonFlag,
    app,
    db_app,
    emit,
    fail,
    out,
    settings_of,
)
from gateway.services import Services, compile_policy
from gateway.settings import ConfigError
from gateway.storage import migrate
from gateway.storage.database import Database
from gateway.storage.migrate import SchemaError

# -- serve ---------------------------------------------------------------------------


@app.command()
def serve(ctx: typer.Context) -> None:
    """Run the SMTP listener and the delivery workers until SIGTERM."""
    settings = settings_of(ctx)
    from gateway.app import Gateway  # the SMTP stack: only `serve` needs it

    try:
        policy = compile_policy(settings)  # a broken policy stops start-up before any work
    except ConfigError as error:
        fail(str(error), False, 2)
    try:
        services = Services.open(settings)
    except SchemaError as error:
        fail(str(error), False, 2)
    if settings.server.process_count > 1:
        services.close()  # each worker process opens its own
        from gateway.supervisor import Supervisor

        try:
            code = Supervisor(settings, policy).run()
        except ConfigError as error:
            fail(str(error), False, 2)
        raise typer.Exit(code)
    try:
        gateway = Gateway(settings, database=services.database, policy=policy)
        asyncio.run(gateway.run_until_signalled())
    except ConfigError as error:
        fail(str(error), False, 2)


@app.command()
def check(
    ctx: typer.Context,
    ready: Annotated[
        bool, typer.Option("--ready", help="Also require /readyz: database, queue, listeners.")
    ] = False,
) -> None:
    """Health check: the SMTP listener greets and answers NOOP, and the metrics listener's
    /healthz (or /readyz) answers 200. Exit 1 with the reason otherwise."""
    settings = settings_of(ctx)
    host = _reachable(settings.smtp.host)
    client_class = _AsBalancer if settings.smtp.proxy_protocol else smtplib.SMTP
    try:
        with client_class(host, settings.smtp.port, timeout=5) as client:
            code, _ = client.noop()
    except (OSError, smtplib.SMTPException) as error:
        fail(f"SMTP listener not answering: {error}", False)
    if code != 250:
        fail(f"SMTP listener answered NOOP with {code}", False)
    metrics = settings.metrics
    if metrics.enabled:
        path = "/readyz" if ready else "/healthz"
        url = f"http://{_url_host(_reachable(metrics.host))}:{metrics.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
        except urllib.error.HTTPError as error:
            try:
                body = json.loads(error.read() or b"{}")
            except ValueError:
                body = None
            if not isinstance(body, dict):  # not the gateway's answer
                body = {}
            problems = [f"{k}: {v}" for k, v in body.get("checks", {}).items() if v != "ok"]
            fail(f"{path}: {'; '.join(problems) or body.get('why') or error.code}", False)
        except OSError as error:
            fail(f"{path} not answering: {error}", False)
    out.print("ok")


class _AsBalancer(smtplib.SMTP):
    """A listener behind a load balancer awaits its PROXY header first: this one is what a
    balancer's own health check sends (v2, LOCAL: no client to name)."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        connection = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        connection.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
        return connection  # type: ignore[no-any-return]


def _reachable(host: str) -> str:
    """A wildcard listener is reached on loopback from inside its own host or container."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# -- db ------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Bring the schema to the newest revision (Alembic)."""
    settings = settings_of(ctx)
    database = Database.from_url(settings.database_url)
    try:
        before = migrate.current_revision(database)
        migrate.upgrade(database)
        after = migrate.current_revision(database)
    except Exception as error:
        fail(f"upgrade failed: {type(error).__name__}: {error}", as_json)
    finally:
        database.dispose()
    emit(
        {"from": before, "to": after},
        as_json,
        lambda: out.print(f"schema: {before or 'empty'} -> {after}"),
    )
