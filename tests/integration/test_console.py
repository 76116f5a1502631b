"""The auditor console over real HTTP, on both stores: nothing answers without a login,
cookies are HttpOnly and SameSite=Strict, every form needs its CSRF token, failed logins
are throttled, an auditor may read but not hold or purge, an operator may; every request
lands in the access log, which is part of the signed archive log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from gateway.audit.verify import verify_archive
from gateway.storage import archive_log, retention
from gateway.storage.auditors import AuditorStore
from gateway.storage.schema import AuditorAccess
from tests.integration.test_archive_search import catch_up
from tests.support.console import console_url, csrf_token, log_in, session_token
from tests.support.gateway import Parties, RunningGateway, running_gateway
from tests.support.process import cli_json, run_cli


@pytest.fixture
def gw(tmp_path: Path, db_url: str) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path, db_url) as running:
        yield running


@pytest.fixture
def parties(gw: RunningGateway) -> Parties:
    parties = gw.register()
    for n in range(2):
        gw.seller_writes(parties, subject=f"Parcel {n}", body=f"Your parcel {n} left today.\n")
    gw.delivered(2)
    catch_up(gw)
    return parties


def account(gw: RunningGateway, name: str, role: str) -> str:
    return AuditorStore(gw.gateway.database, gw.gateway.clock).add(name, role).password


@pytest.fixture
def browser(gw: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console_url(gw), timeout=30) as client:
        yield client


def test_nothing_answers_without_a_login(
    gw: RunningGateway, parties: Parties, browser: httpx.Client
) -> None:
    for path in ("/", "/holds", f"/pairs/{parties.pair_id}", "/messages/1"):
        response = browser.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/login")
    for path in ("/messages/1/received.eml", f"/pairs/{parties.pair_id}/export.zip"):
        assert browser.get(path).status_code == 401
    assert browser.post("/purge", data={"csrf_token": "x"}).status_code == 401
    browser.cookies.set("bsm_session", "made-up")
    assert browser.get("/").status_code == 303


def test_login_cookies_and_csrf(gw: RunningGateway, browser: httpx.Client) -> None:
    password = account(gw, "ada", "auditor")
    # A login form posted without the token its page set is refused.
    refused = browser.post("/login", data={"name": "ada", "password": password,
                                           "csrf_token": "forged"})  # fmt: skip
    assert refused.status_code == 403
    response = log_in(browser, "ada", password)
    assert response.status_code == 303
    cookie = next(v for k, v in response.headers.multi_items() if "bsm_session=" in v)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    page = browser.get("/")
    assert page.status_code == 200 and "ada" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    # A form posted with another token (a cross-site request cannot read this one).
    logout = browser.post("/logout", data={"csrf_token": "not-the-token"})
    assert logout.status_code == 403
    assert browser.post("/logout", data={"csrf_token": session_token(browser)}).status_code == 303
    assert browser.get("/").status_code == 303


def test_failed_logins_are_throttled_and_a_disabled_account_is_out(
    gw: RunningGateway, browser: httpx.Client
) -> None:
    password = account(gw, "ada", "auditor")
    assert log_in(browser, "ada", password).status_code == 303
    settings = gw.settings.auditor
    wrong = [log_in(browser, "ada", "guess").status_code for _ in range(3)]
    assert wrong == [401, 401, 401]  # the free ones: no delay
    AuditorStore(gw.gateway.database, gw.gateway.clock).disable("ada")
    assert browser.get("/").status_code == 303  # its session ended
    assert log_in(browser, "ada", password).status_code == 401
    assert settings.login_failure_limit > 3


def test_an_auditor_reads_but_may_not_hold_or_purge(
    gw: RunningGateway, parties: Parties, browser: httpx.Client
) -> None:
    log_in(browser, "ada", account(gw, "ada", "auditor"))
    token = session_token(browser)
    found = browser.get("/", params={"seller": str(parties.seller_id)})
    assert "Parcel 0" in found.text and "Parcel 1" in found.text
    conversation = browser.get(f"/pairs/{parties.pair_id}")
    assert conversation.text.count("As delivered") == 2
    eml = browser.get("/messages/1/received.eml")
    assert eml.headers["content-type"] == "message/rfc822" and b"Parcel" in eml.content
    for path, form in (("/purge", {}), ("/holds", {"scope": "pair", "value": "1",
                                                   "reason": "case"})):  # fmt: skip
        refused = browser.post(path, data={"csrf_token": token, **form})
        assert refused.status_code == 403 and "Only an operator" in refused.text
    with gw.gateway.database.read_connection() as connection:
        assert retention.holds(connection) == []
        refusals = [a.query for a in archive_log.accesses(connection) if a.action == "refused"]
    assert refusals == [{"asked": "hold"}, {"asked": "purge"}]  # newest first


def test_an_operator_holds_releases_and_purges(
    gw: RunningGateway, parties: Parties, browser: httpx.Client
) -> None:
    log_in(browser, "otto", account(gw, "otto", "operator"))
    token = session_token(browser)
    form = {"csrf_token": token, "scope": "pair", "value": str(parties.pair_id), "reason": "case 7"}
    placed = browser.post("/holds", data=form)
    assert placed.status_code == 303
    holds = browser.get("/holds")
    assert "case 7" in holds.text
    with gw.gateway.database.read_connection() as connection:
        [hold] = retention.holds(connection)
    released = browser.post(f"/holds/{hold.id}/release",
                            data={"csrf_token": token, "reason": "settled"})  # fmt: skip
    assert released.status_code == 303
    purged = browser.post("/purge", data={"csrf_token": token}, follow_redirects=True)
    assert "0 records purged" in purged.text  # none is two years old
    bad = browser.post("/holds", data={"csrf_token": token, "scope": "pair", "value": "x",
                                       "reason": "r"})  # fmt: skip
    assert bad.status_code == 400 and "named by its id" in bad.text


def test_every_request_is_in_the_access_log_and_the_signed_log(
    tmp_path: Path, gw: RunningGateway, parties: Parties, browser: httpx.Client
) -> None:
    log_in(browser, "ada", account(gw, "ada", "auditor"))
    browser.get("/", params={"text": "parcel"})
    browser.get(f"/pairs/{parties.pair_id}")
    browser.get("/messages/2")
    with gw.gateway.database.read_connection() as connection:
        logged = archive_log.accesses(connection)
    assert [a.action for a in logged] == ["view", "conversation", "search", "login"]
    assert logged[0].records == [2] and logged[1].records == [1, 2]
    assert logged[2].query == {"text": "parcel", "limit": 50, "offset": 0}
    assert sorted(logged[2].records) == [1, 2]

    catch_up(gw)
    keys = gw.gateway.services.archive_keys.public_keys()
    assert verify_archive(gw.gateway.database, keys).ok
    config = tmp_path / "gateway.toml"
    listed = cli_json(config, "archive", "access-log", "--auditor", "ada")["accesses"]
    assert [a["action"] for a in listed][:2] == ["view", "conversation"]
    assert all(a["log_seq"] is not None for a in listed)
    # An auditor's trace rewritten in the database: the signed log no longer agrees.
    with gw.gateway.database.writing() as connection:
        connection.execute(
            update(AuditorAccess).where(AuditorAccess.action == "view").values(records="[]")
        )
    report = verify_archive(gw.gateway.database, keys)
    assert not report.ok and "access" in report.problems[0]


def test_the_auditor_commands(tmp_path: Path, gw: RunningGateway, browser: httpx.Client) -> None:
    config = tmp_path / "gateway.toml"
    made = cli_json(config, "auditor", "add", "grace", "--role", "operator")
    assert made["role"] == "operator" and len(made["password"]) >= 20
    assert log_in(browser, "grace", made["password"]).status_code == 303
    again = run_cli(config, "auditor", "add", "grace")
    assert again.returncode == 1 and "exists already" in again.stderr
    bad_role = run_cli(config, "auditor", "add", "kim", "--role", "admin")
    assert bad_role.returncode == 1
    assert cli_json(config, "auditor", "disable", "grace")["disabled"] is True
    [listed] = cli_json(config, "auditor", "list")["auditors"]
    assert listed["name"] == "grace" and listed["disabled_at"] is not None
    assert browser.get("/").status_code == 303


def test_served_over_tls_the_cookie_is_secure(tmp_path: Path, db_url: str) -> None:
    with running_gateway(tmp_path, db_url, auditor_config="tls = true") as gw:
        password = account(gw, "ada", "auditor")
        url = console_url(gw).replace("http:", "https:")
        with httpx.Client(base_url=url, verify=False, timeout=30) as client:
            response = log_in(client, "ada", password)
        cookie = next(v for k, v in response.headers.multi_items() if "bsm_session=" in v)
        assert "Secure" in cookie
    assert csrf_token('<input name="csrf_token" value="abc">') == "abc"


def test_too_many_failed_logins_lock_the_name_out(tmp_path: Path, db_url: str) -> None:
    limits = "login_free_failures = 3\nlogin_failure_limit = 4\nlogin_lockout = 600"
    with running_gateway(tmp_path, db_url, auditor_config=limits) as gw:
        password = account(gw, "ada", "auditor")
        with httpx.Client(base_url=console_url(gw), timeout=30) as client:
            wrong = [log_in(client, "ada", "guess").status_code for _ in range(4)]
            assert wrong == [401, 401, 401, 401]  # the fourth waited a second, and locked
            locked = log_in(client, "ada", password)
            assert locked.status_code == 429 and "Too many failed logins" in locked.text
