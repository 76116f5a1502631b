"""Settings: the embedded config/gateway.toml, an optional operator file, BSM_* variables.

Loaded and validated once at start; the resulting object is passed to whatever needs it.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_DOMAIN_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})+$"
Port = Annotated[int, Field(ge=0, le=65535)]
Seconds = Annotated[float, Field(gt=0)]


def embedded_defaults_path() -> Path:
    """config/gateway.toml: shipped inside the wheel, or read from the source tree."""
    packaged = Path(__file__).with_name("embedded") / "gateway.toml"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "config" / "gateway.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    processes: Annotated[int, Field(ge=0, le=256)]  # 0: one per CPU the process may use
    restart_delay: Seconds

    @property
    def process_count(self) -> int:
        if self.processes:
            return self.processes
        return max(1, len(os.sched_getaffinity(0)))


class SmtpSettings(_Section):
    host: str
    port: Port
    hostname: str
    max_message_size: Annotated[int, Field(gt=0)]
    idle_timeout: Seconds
    shutdown_grace: Seconds
    max_recipients: Annotated[int, Field(ge=1)]
    max_commands: Annotated[int, Field(ge=10)]
    max_sessions_per_client: Annotated[int, Field(ge=1)]
    max_mime_depth: Annotated[int, Field(ge=1)]
    rcpt_refusal_delay: Annotated[float, Field(ge=0)]
    rcpt_refusal_free: Annotated[int, Field(ge=0)]
    rcpt_refusal_window: Seconds
    # Bytes that must stay free where the gateway writes (SQLite's folder, the maildir):
    # below it MAIL gets 452 4.3.1. 0: not checked.
    disk_reserve: Annotated[int, Field(ge=0)]
    # Past this many bytes a message's text goes to a temporary file in spool_folder ("":
    # the system's temporary folder) while it arrives and waits; at most processing_budget
    # bytes of messages are taken in (parsed, judged, rewritten) at once per process.
    spool_after: Annotated[int, Field(ge=0)]
    spool_folder: str
    processing_budget: Annotated[int, Field(gt=0)]
    starttls: bool
    sender_auth: Literal["aligned", "dkim", "spf", "none"]
    # Behind a TCP load balancer: each connection to the MX and to the STARTTLS submission
    # port begins with a PROXY header (v1 or v2) naming the client, sent from these networks.
    proxy_protocol: bool
    proxy_networks: list[IPvAnyNetwork]


class SubmissionSettings(_Section):
    enabled: bool
    host: str
    starttls_port: Port
    tls_port: Port
    auth_require_tls: bool
    auth_free_failures: Annotated[int, Field(ge=0)]
    auth_failure_limit: Annotated[int, Field(ge=1)]
    auth_failure_window: Seconds
    auth_lockout: Seconds

    @model_validator(mode="after")
    def _limit_above_free(self) -> SubmissionSettings:
        if self.auth_failure_limit <= self.auth_free_failures:
            raise ValueError("auth_failure_limit must exceed auth_free_failures")
        return self


class TlsSettings(_Section):
    certificate: Path
    private_key: Path
    self_signed: bool


class RulesSettings(_Section):
    quota_base: Annotated[int, Field(ge=0)]
    quota_per_order: Annotated[int, Field(ge=0)]
    quota_window_days: Annotated[int, Field(ge=1)]
    quota_permanent: bool
    contact_window_days: Annotated[int, Field(ge=1)]
    important_tag: Annotated[str, Field(min_length=1)]
    reason_tags: list[Annotated[str, Field(min_length=1)]]
    important_share_threshold: Annotated[float, Field(ge=0, le=1)]
    content_policy: str  # path of a policy.toml; "" for the embedded one


class DnsSettings(_Section):
    nameservers: list[IPvAnyAddress]
    port: Port
    timeout: Seconds


class AdminSettings(_Section):
    enabled: bool
    host: str
    port: Port
    token: str

    @model_validator(mode="after")
    def _token_when_enabled(self) -> AdminSettings:
        if self.enabled and len(self.token) < 16:
            raise ValueError(
                "token: the admin API needs a bearer token of 16 characters or more "
                "(BSM_ADMIN__TOKEN), or enabled = false"
            )
        return self


class AuditorSettings(_Section):
    enabled: bool
    host: str
    port: Port
    tls: bool  # served over TLS with [tls]'s certificate; its cookies are then Secure
    session_minutes: Annotated[int, Field(ge=1, le=24 * 60)]
    login_free_failures: Annotated[int, Field(ge=0)]
    login_failure_limit: Annotated[int, Field(ge=1)]
    login_failure_window: Seconds
    login_lockout: Seconds


class MetricsSettings(_Section):
    enabled: bool
    host: str
    port: Port
    queue_stuck_after: Seconds  # /readyz fails once a due delivery has waited this long


class SmtpTarget(BaseModel):
    """A smarthost parsed from smtp://[user:pass@]host:port[?starttls=1]."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False


class DeliverySettings(_Section):
    transport: str
    workers: Annotated[int, Field(ge=1, le=64)]
    retry_schedule: Annotated[list[Seconds], Field(min_length=1)]
    give_up_after: Seconds
    claim_lease: Seconds
    claim_batch: Annotated[int, Field(ge=1, le=500)]
    poll_interval: Seconds
    attempt_timeout: Seconds
    # Each process writes a heartbeat this often; one silent for dead_after is known dead
    # and its claims are given back at once (one on the same host: as soon as it is gone).
    heartbeat: Seconds
    dead_after: Seconds

    @field_validator("transport")
    @classmethod
    def _known_transport(cls, value: str) -> str:
        if value.startswith("maildir:"):
            if not value.removeprefix("maildir:"):
                raise ValueError("maildir: needs a path, e.g. maildir:var/outbox")
            return value
        if value.startswith("smtp://"):
            parse_smtp_target(value)
            return value
        raise ValueError("must be maildir:PATH or smtp://[user:pass@]host:port[?starttls=1]")

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> DeliverySettings:
        # A batch is sent at once; if an attempt could outlast the lease, another worker
        # would take the row while it is still being sent, and deliver it twice.
        if self.claim_lease <= self.attempt_timeout + 5:
            raise ValueError("claim_lease must exceed attempt_timeout by more than 5 seconds")
        # Likewise: a process whose heartbeat could lapse during an attempt it started could
        # be taken for dead while it still sends.
        if self.dead_after <= self.attempt_timeout + 2 * self.heartbeat + 2:
            raise ValueError(
                "dead_after must exceed attempt_timeout + 2 x heartbeat by more than 2 seconds"
            )
        return self

    @property
    def maildir_path(self) -> Path | None:
        if self.transport.startswith("maildir:"):
            return Path(self.transport.removeprefix("maildir:"))
        return None

    @property
    def smarthost(self) -> SmtpTarget | None:
        if self.transport.startswith("smtp://"):
            return parse_smtp_target(self.transport)
        return None


def parse_smtp_target(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError("smtp:// needs a host")
    try:
        port = parts.port or 25
    except ValueError as error:
        raise ValueError(f"bad port in smtp:// URL: {error}") from None
    query = parse_qs(parts.query)
    unknown = set(query) - {"starttls"}
    if unknown:
        raise ValueError(f"unknown smtp:// option {sorted(unknown)[0]!r}")
    starttls = query.get("starttls", ["0"])[-1] in {"1", "true", "yes"}
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        starttls=starttls,
    )


class BounceSettings(_Section):
    # A delivery's VERP envelope sender stays valid this long after the attempt.
    verp_valid_for: Seconds
    # The HMAC key of VERP addresses (BSM_BOUNCES__VERP_SECRET); empty: one made on first
    # start and kept in the database, shared by every instance.
    verp_secret: SecretStr
    # This many hard bounces of an address within suppress_window suppress it for
    # suppress_for: messages to it are then refused at once (550 5.1.1).
    suppress_after: Annotated[int, Field(ge=1)]
    suppress_window: Seconds
    suppress_for: Seconds


class DkimSettings(_Section):
    selector: Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]


class ArchiveSettings(_Section):
    # How often what was committed is appended to the archive log and a checkpoint signed.
    checkpoint_interval: Annotated[float, Field(gt=0, le=3600)]
    # A record may be purged this many days after it was received, unless a legal hold
    # covers it or its delivery is still queued.
    retention_days: Annotated[int, Field(ge=1)]


class ImapSource(_Section):
    """One mailbox the gateway fetches from, as if its messages had arrived on the MX."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]{0,39}$")]
    host: Annotated[str, Field(min_length=1)]
    port: Port
    tls: Literal["implicit", "starttls", "none"]
    ca_file: Path | None = None  # the CA that signs the server's certificate; None: system's
    user: Annotated[str, Field(min_length=1)]
    folder: Annotated[str, Field(min_length=1)] = "INBOX"
    # After the commit: moved to this folder, or (flag = true) left and flagged.
    move_to: str = ""
    flag: bool = False
    # Where a message that cannot be read, routed or taken (too large) is put aside.
    quarantine_to: Annotated[str, Field(min_length=1)] = "Quarantine"
    # Where the server writes the envelope: the alias in the topmost field of the first of
    # these headers that names an address on the alias domain; the sender in sender_header.
    recipient_headers: Annotated[list[str], Field(min_length=1)] = [
        "Delivered-To",
        "X-Original-To",
        "To",
    ]
    sender_header: Annotated[str, Field(min_length=1)] = "Return-Path"
    # Authentication-Results written by these servers (authserv-id) count as proof of the
    # sender beside the gateway's own DKIM check (SPF needs the client's address: only the
    # server that received the message could check it).
    trusted_authserv_ids: list[str] = []

    @model_validator(mode="after")
    def _one_way_to_finish(self) -> ImapSource:
        if bool(self.move_to) == self.flag:
            raise ValueError('give either move_to = "FOLDER" or flag = true')
        if self.folder in (self.move_to, self.quarantine_to):
            raise ValueError("move_to and quarantine_to must be other folders than folder")
        return self


class ImapSettings(_Section):
    poll_interval: Seconds  # without IDLE: how often the folder is searched
    # IDLE is ended and issued again this often (RFC 2177: before 29 minutes): its end
    # proves the server still answers, and the folder is searched then whatever IDLE said.
    idle_renew: Annotated[float, Field(gt=0, lt=29 * 60)]
    timeout: Seconds  # a command's reply, and a connection's greeting
    lease: Annotated[float, Field(ge=3)]  # one process polls a source; renewed at a third
    backoff_min: Seconds
    backoff_max: Seconds
    batch: Annotated[int, Field(ge=1, le=500)]  # messages fetched and committed together
    # A message that could not be committed while the database took other writes (it is the
    # message): retried after this, doubling, and put aside after five tries.
    retry_message_after: Seconds
    sources: list[ImapSource]
    # The passwords, by source name, from the environment: BSM_IMAP__PASSWORDS__<NAME>.
    passwords: dict[str, SecretStr]

    @model_validator(mode="after")
    def _each_source_once_with_a_password(self) -> ImapSettings:
        names = [source.name for source in self.sources]
        if len(set(names)) != len(names):
            raise ValueError("sources: two sources have the same name")
        for name in names:
            if name not in self.passwords:
                raise ValueError(
                    f"source {name!r} has no password: set BSM_IMAP__PASSWORDS__{name.upper()}"
                )
        return self

    def password(self, source: ImapSource) -> str:
        return self.passwords[source.name].get_secret_value()


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"]
    format: Literal["json", "console"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BSM_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        toml_file=[embedded_defaults_path()],
    )

    alias_domain: Annotated[str, Field(pattern=_DOMAIN_PATTERN)]
    database_url: Annotated[str, Field(min_length=1)]
    server: ServerSettings
    smtp: SmtpSettings
    submission: SubmissionSettings
    tls: TlsSettings
    delivery: DeliverySettings
    bounces: BounceSettings
    dkim: DkimSettings
    archive: ArchiveSettings
    imap: ImapSettings
    rules: RulesSettings
    dns: DnsSettings
    log: LogSettings
    metrics: MetricsSettings
    admin: AdminSettings
    auditor: AuditorSettings

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: explicit arguments, the environment, then the TOML files.
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, deep_merge=True),
        )


class ConfigError(Exception):
    """A configuration that cannot be used; str() is one line naming the key."""


def load_settings(config: Path | None = None, **overrides: object) -> Settings:
    """The embedded defaults, overlaid by `config` (if given), the environment, `overrides`."""
    files = [embedded_defaults_path()]
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"config file {config}: not found")
        files.append(config)
    for path in files:
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"config file {path}: {error}") from None

    class _FromFiles(Settings):
        model_config = SettingsConfigDict(toml_file=files)

    try:
        return _FromFiles(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None


def describe_validation_error(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] != "missing":
            message = f"{message} (got {item['input']!r})"
        problems.append(f"{key}: {message}")
    return "config error: " + "; ".join(problems)
