"""SMTP AUTH on the submission ports: a seller's app password, checked off the event loop."""

from __future__ import annotations

import asyncio

from gateway.core import status
from gateway.core.model import SellerLogin
from gateway.core.status import Reply
from gateway.obs.log import get_logger
from gateway.obs.metrics import Metrics
from gateway.storage.client_failures import FailureThrottle
from gateway.storage.credentials import UNKNOWN_USER_HASH, CredentialStore, password_matches

_log = get_logger("auth")


class SubmissionAuth:
    """Checks credentials; repeated failures from one client address or for one user name
    are slowed down, then refused with 454 4.7.0 for a while, by every process alike (the
    failures are counted in the database)."""

    def __init__(
        self, logins: CredentialStore, throttle: FailureThrottle, metrics: Metrics
    ) -> None:
        self._logins = logins
        self._throttle = throttle
        self._metrics = metrics

    async def client_locked(self, client: str) -> bool:
        if await asyncio.to_thread(self._throttle.locked, [f"client:{client}"]):
            self._metrics.auth_attempts.labels("locked").inc()
            return True
        return False

    async def check(self, client: str, username: str, password: str) -> SellerLogin | Reply:
        """The seller behind the credentials, or the reply that refuses them."""
        keys = [f"client:{client}", f"user:{username}"]
        if await asyncio.to_thread(self._throttle.locked, keys):
            self._metrics.auth_attempts.labels("locked").inc()
            return status.AUTH_LOCKED
        login = await asyncio.to_thread(self._verify, username, password)
        if login is not None:
            self._metrics.auth_attempts.labels("success").inc()
            _log.info("auth_succeeded", seller_id=login.seller_id, username=username)
            return login
        self._metrics.auth_attempts.labels("failure").inc()
        delay, newly_locked = await asyncio.to_thread(self._throttle.failed, keys)
        for key in newly_locked:
            scope = key.split(":", 1)[0]
            self._metrics.auth_lockouts.labels(scope).inc()
            _log.warning("auth_locked_out", scope=scope)
        _log.info("auth_failed", delay=delay)
        await asyncio.sleep(delay)
        return status.AUTH_INVALID

    def _verify(self, username: str, password: str) -> SellerLogin | None:
        """Runs in a worker thread: a database look-up and an argon2 check (~0.1 s of CPU)."""
        stored = self._logins.find(username)
        # An unknown name costs the same hash check: timing tells nothing about names.
        matches = password_matches(stored.password_hash if stored else UNKNOWN_USER_HASH, password)
        return stored.login if stored is not None and matches else None
