"""The services every entry point shares, opened one way: `serve` and the CLI alike get the
database (its schema checked), the stores over it, and the compiled policy from here."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core.addresses import BounceSigner, new_verp_key
from gateway.core.clock import Clock, SystemClock
from gateway.policy.rules.marketplace import MarketplacePolicy
from gateway.settings import ConfigError, Settings
from gateway.storage import suppressions
from gateway.storage.archive_keys import ArchiveKeyStore
from gateway.storage.changes import Change
from gateway.storage.credentials import CredentialStore
from gateway.storage.database import Database
from gateway.storage.dkim_keys import DkimKeyStore
from gateway.storage.imap import MailboxLedger, SourceState
from gateway.storage.migrate import open_database
from gateway.storage.registry import Registry
from gateway.storage.reports import Reports
from gateway.storage.secrets import SecretStore

if TYPE_CHECKING:
    from gateway.intake.policy import Policy


def marketplace_policy(settings: Settings) -> MarketplacePolicy:
    rules = settings.rules
    return MarketplacePolicy(
        quota_base=rules.quota_base,
        quota_per_daily_order=rules.quota_per_order,
        quota_window_days=rules.quota_window_days,
        quota_permanent=rules.quota_permanent,
        contact_window_days=rules.contact_window_days,
        important_tag=rules.important_tag,
        reason_tags=tuple(rules.reason_tags),
    )


def compile_policy(settings: Settings, path: Path | str | None = None) -> Policy:
    """The policy `path` names (else the one the settings name, else the embedded one),
    compiled with the marketplace's rules. A broken one raises ConfigError, one line naming
    the file and the key, like a bad config."""
    # Imported here: the rules and their compilation are a second of start-up that the
    # registry commands do not need.
    from gateway.intake.policy import Policy
    from gateway.policyfile import PolicyError, load_policy

    try:
        content = load_policy(path or settings.rules.content_policy or None)
    except PolicyError as error:
        raise ConfigError(str(error)) from None
    return Policy.compile(content, marketplace_policy(settings), settings.smtp.sender_auth)


@dataclass
class Services:
    settings: Settings
    database: Database
    clock: Clock = field(default_factory=SystemClock)
    # Told of each registry change once committed (a gateway process: its directory cache).
    on_change: Callable[[Change], None] | None = None

    def __post_init__(self) -> None:
        domain = self.settings.alias_domain
        self.registry = Registry(self.database, domain, self.clock, self.on_change)
        self.credentials = CredentialStore(self.database, self.clock)
        self.dkim_keys = DkimKeyStore(self.database, self.clock)
        self.archive_keys = ArchiveKeyStore(self.database, self.clock)
        self.reports = Reports(self.database, self.clock)
        self.mailboxes = MailboxLedger(self.database)
        self.secrets = SecretStore(self.database, self.clock)

    def bounce_signer(self) -> BounceSigner:
        """The VERP signer: the configured key, else the one kept in the database (made
        now on a database without one)."""
        bounces = self.settings.bounces
        key = bounces.verp_secret.get_secret_value() or self.secrets.ensure("verp", new_verp_key)
        valid_for = timedelta(seconds=bounces.verp_valid_for)
        return BounceSigner(key.encode(), valid_for, self.settings.alias_domain)

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> Services:
        """The settings' database, its schema created if it is empty and checked to be
        current (raises storage.migrate.SchemaError otherwise)."""
        return cls(settings, open_database(settings.database_url), clock or SystemClock())

    def close(self) -> None:
        self.database.dispose()

    def imap_status(self) -> list[dict[str, Any]]:
        """Each mailbox source: as configured, and as the database last saw it polled (the
        process holding its lease, its state, how much it took in). A source the database
        knows and the settings no longer name is listed too, as not configured."""
        now = self.clock.now()
        known = {state.name: state for state in self.mailboxes.states()}
        listed = []
        for source in self.settings.imap.sources:
            finish = f"move to {source.move_to}" if source.move_to else "flag"
            configured = {
                "configured": True,
                "server": f"{source.host}:{source.port}",
                "tls": source.tls,
                "folder": source.folder,
                "after": finish,
                "quarantine": source.quarantine_to,
            }
            listed.append(
                _source_status(source.name, configured, known.pop(source.name, None), now)
            )
        for name, state in sorted(known.items()):
            listed.append(_source_status(name, {"configured": False}, state, now))
        return listed

    def suppressions(self, everything: bool = False) -> list[dict[str, Any]]:
        """Addresses suppressed after hard bounces (with `everything`, also those that
        bounced and are not, or no longer, suppressed), named by a reference and a masked
        form: the list reveals no address."""
        now = self.clock.now()
        with self.database.engine.begin() as connection:
            rows = suppressions.listing(connection, now, everything)
        return [
            {
                "ref": suppression_ref(row.address),
                "address": _masked(row.address),
                "hard_bounces": row.hard_bounces,
                "last_status": row.last_status,
                "last_bounce_at": row.last_bounce_at.isoformat(),
                "suppressed_until": row.suppressed_until.isoformat()
                if row.suppressed_until
                else None,
                "active": row.suppressed_until is not None and row.suppressed_until > now,
            }
            for row in rows
        ]

    def lift_suppression(self, address_or_ref: str) -> bool:
        """Lift the suppression of an address, given as itself or by its reference."""
        now = self.clock.now()
        with self.database.engine.begin() as connection:
            known = suppressions.listing(connection, now, everything=True)
            wanted = address_or_ref.strip().lower()
            for row in known:
                if wanted in (row.address.lower(), suppression_ref(row.address)):
                    return suppressions.remove(connection, row.address, now)
        return False


def suppression_ref(address: str) -> str:
    """A short name for a suppressed address that does not reveal it."""
    return hashlib.sha256(address.encode()).hexdigest()[:12]


def _masked(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _source_status(
    name: str, configured: dict[str, Any], state: SourceState | None, now: datetime
) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    if state is None:
        return {"name": name, **configured, "state": "never polled", "taken": 0}
    held = state.lease_until is not None and state.lease_until > now and state.holder
    return {
        "name": name,
        **configured,
        # A lease run out: whatever the state was, nobody polls the source now.
        "state": state.state if held else "not polled",
        "detail": state.detail,
        "polled_by": state.holder if held else None,
        "lease_until": when(state.lease_until) if held else None,
        "uidvalidity": state.uidvalidity,
        "last_ok_at": when(state.last_ok_at),
        "changed_at": when(state.changed_at),
        "taken": state.taken,
        "last_taken_at": when(state.last_taken_at),
    }
