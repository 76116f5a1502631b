"""Logging in to the auditor console of a running gateway, as a browser would."""

from __future__ import annotations

import re

import httpx

from tests.support.gateway import RunningGateway

_HIDDEN_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_url(gw: RunningGateway) -> str:
    assert gw.gateway.console is not None
    return f"http://127.0.0.1:{gw.gateway.console.port}"


def csrf_token(page: str) -> str:
    found = _HIDDEN_TOKEN.search(page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def log_in(client: httpx.Client, name: str, password: str) -> httpx.Response:
    """Opens the login page (its form token) and posts the form; the response to it."""
    form = client.get("/login")
    return client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": csrf_token(form.text)},
    )


def session_token(client: httpx.Client) -> str:
    """The CSRF token of the logged-in session's forms."""
    return csrf_token(client.get("/").text)
