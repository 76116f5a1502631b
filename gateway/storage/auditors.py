"""Auditor console accounts and their logins (owner of auditors and auditor_sessions).

A password is shown once and kept only as an argon2id hash. A login is a random token in
the browser's cookie; the database keeps its SHA-256, so a copy of the database opens no
session, with the CSRF token its forms must carry."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.core.clock import Clock
from gateway.storage.credentials import (
    UNKNOWN_USER_HASH,
    hash_password,
    new_app_password,
    password_matches,
)
from gateway.storage.database import Database
from gateway.storage.schema import Auditor, AuditorSession, table_of

ROLES = ("auditor", "operator")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_ACCOUNTS = table_of(Auditor)
_SESSIONS = table_of(AuditorSession)


class AuditorError(ValueError):
    """An account request that cannot be carried out; the text says why."""


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    role: str

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True, slots=True)
class NewAccount:
    account: Account
    password: str  # shown once


@dataclass(frozen=True, slots=True)
class Login:
    """A signed-in browser: its account and the CSRF token of its forms."""

    account: Account
    csrf_token: str
    expires_at: datetime


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuditorStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    def add(self, name: str, role: str) -> NewAccount:
        if role not in ROLES:
            raise AuditorError(f"a role is one of {', '.join(ROLES)}, not {role!r}")
        if not _NAME.match(name):
            raise AuditorError(
                f"{name!r}: a name is lower-case letters, digits, '.', '_' or '-' (64 at most)"
            )
        password = new_app_password()
        try:
            with self._db.writing() as connection:
                account_id = connection.execute(
                    insert(_ACCOUNTS)
                    .values(name=name, role=role, password_hash=hash_password(password),
                            created_at=self._clock.now())
                    .returning(_ACCOUNTS.c.id)
                ).scalar_one()  # fmt: skip
        except IntegrityError:
            raise AuditorError(f"an account named {name!r} exists already") from None
        return NewAccount(Account(int(account_id), name, role), password)

    def disable(self, name: str) -> None:
        """No more logins, and every open session of the account ends now."""
        with self._db.writing() as connection:
            account_id = connection.execute(
                update(_ACCOUNTS)
                .where(_ACCOUNTS.c.name == name, _ACCOUNTS.c.disabled_at.is_(None))
                .values(disabled_at=self._clock.now())
                .returning(_ACCOUNTS.c.id)
            ).scalar()
            if account_id is None:
                raise AuditorError(f"no enabled account named {name!r}")
            connection.execute(delete(_SESSIONS).where(_SESSIONS.c.auditor_id == account_id))

    def accounts(self) -> list[tuple[Account, datetime | None]]:
        """Every account, and when it was disabled (None: it is enabled)."""
        with self._db.read_connection() as connection:
            rows = connection.execute(select(_ACCOUNTS).order_by(_ACCOUNTS.c.name)).mappings()
            return [(Account(r["id"], r["name"], r["role"]), r["disabled_at"]) for r in rows]

    def check_password(self, name: str, password: str) -> Account | None:
        """The enabled account if the password is its own; as slow for an unknown name."""
        with self._db.read_connection() as connection:
            row = (
                connection.execute(
                    select(_ACCOUNTS).where(
                        _ACCOUNTS.c.name == name, _ACCOUNTS.c.disabled_at.is_(None)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            password_matches(UNKNOWN_USER_HASH, password)
            return None
        if not password_matches(row["password_hash"], password):
            return None
        return Account(row["id"], row["name"], row["role"])

    def open_session(self, account: Account, lifetime: timedelta) -> tuple[str, Login]:
        """A new login: the token for the cookie, and the login it opens."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self._clock.now()
        with self._db.writing() as connection:
            connection.execute(delete(_SESSIONS).where(_SESSIONS.c.expires_at <= now))
            connection.execute(
                insert(_SESSIONS).values(
                    token_hash=_token_hash(token), auditor_id=account.id, csrf_token=csrf,
                    created_at=now, expires_at=now + lifetime,
                )
            )  # fmt: skip
        return token, Login(account, csrf, now + lifetime)

    def session(self, token: str) -> Login | None:
        """The login a cookie's token opens, if it is still valid and its account enabled."""
        with self._db.read_connection() as connection:
            row = (
                connection.execute(
                    select(
                        _ACCOUNTS.c.id,
                        _ACCOUNTS.c.name,
                        _ACCOUNTS.c.role,
                        _SESSIONS.c.csrf_token,
                        _SESSIONS.c.expires_at,
                    )
                    .join(_ACCOUNTS, _ACCOUNTS.c.id == _SESSIONS.c.auditor_id)
                    .where(
                        _SESSIONS.c.token_hash == _token_hash(token),
                        _SESSIONS.c.expires_at > self._clock.now(),
                        _ACCOUNTS.c.disabled_at.is_(None),
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        return Login(Account(row["id"], row["name"], row["role"]), row["csrf_token"],
                     row["expires_at"])  # fmt: skip

    def close_session(self, token: str) -> None:
        with self._db.writing() as connection:
            connection.execute(
                delete(_SESSIONS).where(_SESSIONS.c.token_hash == _token_hash(token))
            )
