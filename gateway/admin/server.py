"""An HTTP listener (uvicorn) on the gateway's own event loop: the admin API's, the
auditor console's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The gateway handles SIGTERM and SIGINT itself and stops this server in order.
        yield


class AdminServer:
    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        *,
        name: str = "admin API",
        tls: tuple[str, str] | None = None,
    ) -> None:
        """`tls`: the certificate and private key files, to serve HTTPS."""
        self._name = name
        self._where = f"{host}:{port}"
        certificate, private_key = tls or (None, None)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            ssl_certfile=certificate,
            ssl_keyfile=private_key,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                with contextlib.suppress(SystemExit):  # uvicorn's answer to a busy port
                    await self._task
                raise OSError(f"{self._name}: cannot listen on {self._where}")
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        sockets = self._server.servers[0].sockets
        port: int = sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await self._task
            self._task = None
