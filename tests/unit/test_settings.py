from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import ConfigError, load_settings


def test_embedded_defaults() -> None:
    settings = load_settings()
    assert settings.alias_domain == "relay.example.test"
    assert settings.database_url == "sqlite:///var/gateway.db"
    assert (settings.smtp.host, settings.smtp.port) == ("127.0.0.1", 2525)
    assert settings.delivery.maildir_path == Path("var/outbox")
    assert settings.delivery.give_up_after == 5 * 86400
    assert (settings.submission.starttls_port, settings.submission.tls_port) == (2587, 2465)
    assert settings.submission.auth_require_tls
    assert settings.smtp.sender_auth == "aligned"
    assert settings.tls.self_signed and settings.tls.certificate == Path("var/tls/cert.pem")
    auditor = settings.auditor
    assert (auditor.enabled, auditor.host, auditor.port, auditor.tls) == (
        True, "127.0.0.1", 2592, False,
    )  # fmt: skip


def test_the_container_config_is_valid() -> None:
    settings = load_settings(Path(__file__).parents[2] / "deploy" / "container.toml")
    assert settings.smtp.host == settings.submission.host == settings.auditor.host == "0.0.0.0"
    assert not settings.tls.self_signed and settings.auditor.tls  # the console over HTTPS


def test_file_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(
        '[smtp]\nport = 25\n[delivery]\ntransport = "smtp://u:p%40ss@mx.example:587?starttls=1"\n'
    )
    monkeypatch.setenv("BSM_DATABASE_URL", "postgresql+psycopg://db/gateway")
    monkeypatch.setenv("BSM_SMTP__HOST", "0.0.0.0")
    settings = load_settings(config)
    assert settings.smtp.port == 25 and settings.smtp.host == "0.0.0.0"
    assert settings.smtp.hostname == "mx.relay.example.test"  # untouched keys keep defaults
    assert settings.database_url == "postgresql+psycopg://db/gateway"
    target = settings.delivery.smarthost
    assert target is not None
    assert (target.host, target.port, target.username, target.password, target.starttls) == (
        "mx.example",
        587,
        "u",
        "p@ss",
        True,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[smtp]\nprot = 25\n", "config error: smtp.prot: unknown key"),
        ("[smtp]\nport = 70000\n", "config error: smtp.port: Input should be less than or equal"),
        ('[delivery]\ntransport = "ftp://x"\n', "config error: delivery.transport: must be"),
        ("alias_domain = 'Not A Domain'\n", "config error: alias_domain:"),
        ("[smtp\nport = 1\n", "config file"),
    ],
)
def test_a_wrong_key_or_value_is_one_line_naming_it(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
