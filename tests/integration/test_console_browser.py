"""The auditor console in a real headless Chromium, on both stores: an auditor logs in,
searches a seller, opens the conversation (a screenshot of it is saved in the test's
folder), downloads the signed export and the export verifies offline; an unauthenticated
visit lands on the login page, and the auditor's forged purge request is refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from gateway.audit.bundle import verify_bundle
from gateway.policyfile import embedded_policy_path
from gateway.storage.auditors import AuditorStore
from tests.integration.test_archive_search import catch_up
from tests.support.browser import chromium
from tests.support.console import console_url
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.mail import data_reply, send, text_message


@pytest.fixture
def gw(tmp_path: Path, db_url: str) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path, db_url, content_policy=embedded_policy_path()) as running:
        yield running


def converse(gw: RunningGateway) -> int:
    """A buyer and a seller write back and forth; one of the seller's is refused. The pair."""
    p = gw.register(shop="Sakura Shop", buyer="kim@buyer-mail.example")
    question = text_message(sender=p.buyer_address, to=p.seller_alias, subject="Size of the vase",
                            body="Hello, is the blue vase 30 cm tall? 谢谢\n")  # fmt: skip
    assert send(gw.port, p.buyer_address, [p.seller_alias], question) == {}
    gw.seller_writes(p, subject="Re: Size of the vase",
                     body="Yes, it is 30 cm tall. Would you like it gift-wrapped?\n")  # fmt: skip
    phone = text_message(sender=p.seller_mailbox, to=p.buyer_alias, subject="Re: Size",
                         body="Or call me on +1 415 555 2671 to talk it over?\n")  # fmt: skip
    assert data_reply(gw.port, phone)[0] == 550
    gw.delivered(2)
    catch_up(gw)
    return p.pair_id


def wait_for_file(folder: Path, suffix: str, timeout: float = 20) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.glob(f"*{suffix}") if p.stat().st_size > 0]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} downloaded into {folder}")


def log_in(browser: WebDriver, base: str, name: str, password: str) -> None:
    browser.get(f"{base}/login")
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "login").click()


def test_an_auditor_finds_reads_and_exports_a_conversation(
    tmp_path: Path, gw: RunningGateway
) -> None:
    pair_id = converse(gw)
    password = AuditorStore(gw.gateway.database, gw.gateway.clock).add("ada", "auditor").password
    base = console_url(gw)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with chromium(downloads) as browser:
        browser.get(f"{base}/pairs/{pair_id}")  # not logged in: the login page
        assert browser.current_url == f"{base}/login"
        log_in(browser, base, "ada", "wrong")
        assert "Wrong name or password" in browser.find_element(By.ID, "login-error").text
        log_in(browser, base, "ada", password)
        WebDriverWait(browser, 10).until(expected_conditions.url_to_be(f"{base}/"))

        browser.find_element(By.ID, "seller").send_keys("1")
        browser.find_element(By.ID, "search-button").click()
        assert browser.find_element(By.ID, "count").text.startswith("3 records")
        assert "Size of the vase" in browser.find_element(By.ID, "results").text
        browser.find_element(By.CSS_SELECTOR, "#results a.pair").click()

        conversation = browser.find_element(By.ID, "conversation")
        messages = conversation.find_elements(By.CSS_SELECTOR, "li.message")
        assert [m.get_attribute("class") for m in messages] == [
            "message from-buyer", "message from-seller", "message from-seller",
        ]  # fmt: skip
        assert "谢谢" in messages[0].text and "gift-wrapped" in messages[1].text
        assert "content.phone" in messages[2].text and "refused" in messages[2].text
        browser.save_screenshot(str(tmp_path / "conversation.png"))

        browser.find_element(By.ID, "export").click()
        bundle = wait_for_file(downloads, ".zip")
        key = gw.gateway.services.archive_keys.active()
        assert key is not None
        check = verify_bundle(bundle, key.public_key)
        assert check.ok and check.messages == 3, check.problems

        # The auditor's session posts the purge form it is never shown.
        browser.execute_script(
            """const form = document.createElement('form');
               form.method = 'post'; form.action = '/purge';
               const token = document.querySelector('input[name=csrf_token]').cloneNode();
               form.appendChild(token); document.body.appendChild(form); form.submit();"""
        )
        error = browser.find_element(By.ID, "error")
        assert error.text == "Only an operator may do this."
    assert (tmp_path / "conversation.png").stat().st_size > 10_000
