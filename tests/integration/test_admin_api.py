"""The HTTP admin API of a running gateway, over loopback: the bearer token, each route, the
OpenAPI document, and errors worded as the CLI words them for the same input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from gateway.core.model import PairStanding
from gateway.storage.schema import Vacation
from tests.support.admin import (
    buyer_writes,
    cli_error,
    make_traffic,
    operator_config,
    seller_writes,
)
from tests.support.gateway import ADMIN_TOKEN, Parties, RunningGateway
from tests.support.mail import read, send, text_message
from tests.support.process import one_json_object, run_cli

SELLER = "owner@sakura-shop.example"
BUYER = "kim.buyer@buyer-mail.example"
PLACED = "2026-11-01T10:00:00Z"

# Every route, with a request that would succeed once seller 1 and message 1 exist.
ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/v1/orders", {"seller": 1, "buyer": BUYER, "order_ref": "R", "placed_at": PLACED}),
    ("POST", "/v1/orders/import", []),
    ("POST", "/v1/buyers/opt-out", {"address": BUYER}),
    ("POST", "/v1/buyers/opt-in", {"address": BUYER}),
    ("POST", "/v1/sellers/{seller_id}/suspend", None),
    ("POST", "/v1/sellers/{seller_id}/reinstate", None),
    (
        "POST",
        "/v1/sellers/{seller_id}/vacations",
        {"starts_at": "2026-12-20T00:00:00Z", "ends_at": "2026-12-27T00:00:00Z"},
    ),
    ("PUT", "/v1/sellers/{seller_id}/pre-purchase", {"allowed": True}),
    ("POST", "/v1/messages/{message}/no-response-needed", None),
    ("GET", "/v1/reports/response-times", None),
    ("GET", "/v1/reports/important", None),
    ("GET", "/v1/imap/sources", None),
]


def _concrete(template: str) -> str:
    return template.format(seller_id=1, message=1)


@pytest.fixture
def api(gw: RunningGateway) -> Iterator[httpx.Client]:
    """A client of the admin API that carries the token."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=gw.admin_url, headers=headers, timeout=30) as client:
        yield client


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body, dict)
    return body


def _error(response: httpx.Response, status: int) -> str:
    """An error answer: the status, and a body of exactly {"error": "..."}; its text."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return body["error"]


def _standing(gw: RunningGateway, parties: Parties) -> PairStanding:
    conversation = gw.registry.find_alias(parties.buyer_alias.partition("@")[0])
    assert conversation is not None
    return conversation.standing


def _now() -> str:
    """An order placed now keeps the pair within its contact window."""
    return datetime.now(UTC).isoformat()


# -- the token -------------------------------------------------------------------------------


def test_every_route_wants_the_token(gw: RunningGateway) -> None:
    parties = gw.register()  # seller 1, so that an authorised request would succeed
    wrong = [
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    ]
    with httpx.Client(base_url=gw.admin_url, timeout=30) as client:
        for method, template, body in ROUTES:
            for headers in wrong:
                response = client.request(method, _concrete(template), json=body, headers=headers)
                where = f"{method} {template} with {headers}"
                assert _error(response, 401) == "a valid bearer token is required", where
                assert response.headers["WWW-Authenticate"] == "Bearer", where
        # The token is checked before the body: no validation detail without it.
        _error(client.post("/v1/orders", json={"seller": "x"}), 401)

    # Nothing was carried out.
    standing = _standing(gw, parties)
    assert not (standing.seller_suspended or standing.buyer_opted_out)
    assert not standing.pre_purchase_allowed


def test_the_openapi_document_lists_every_route(api: httpx.Client) -> None:
    document = _ok(api.get("/openapi.json"))
    assert document["info"]["title"] == "bsm-gateway admin API"
    listed = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert listed == {(method, template) for method, template, _ in ROUTES}
    # The bearer scheme is declared, so that generated clients send the token.
    schemes = document["components"]["securitySchemes"].values()
    assert [s["scheme"].lower() for s in schemes if s["type"] == "http"] == ["bearer"]


# -- the routes ------------------------------------------------------------------------------


def test_an_order_posted_makes_the_pair_usable_over_smtp(
    gw: RunningGateway, api: httpx.Client
) -> None:
    seller_id = gw.registry.add_seller("Sakura Shop", [SELLER])
    order = {"seller": seller_id, "buyer": BUYER, "order_ref": "ORD-1", "placed_at": _now()}
    made = _ok(api.post("/v1/orders", json=order), 201)
    assert set(made) == {
        "order_id",
        "created",
        "pair_id",
        "seller_id",
        "buyer_id",
        "buyer_alias",
        "seller_alias",
    }
    assert made["created"] is True
    # Posting it again is harmless: the same order and aliases.
    assert _ok(api.post("/v1/orders", json=order), 201) == {**made, "created": False}

    mail = text_message(sender=SELLER, to=made["buyer_alias"], subject="Shipped")
    assert send(gw.port, SELLER, [made["buyer_alias"]], mail) == {}
    reply = text_message(sender=BUYER, to=made["seller_alias"], subject="Re: Shipped")
    assert send(gw.port, BUYER, [made["seller_alias"]], reply) == {}
    # Both arrive, one to each party (deliveries run concurrently: in either order).
    assert sorted(str(read(path)["To"]) for path in gw.delivered(2)) == sorted([BUYER, SELLER])


def test_order_import_counts_rows_and_reports_bad_ones_by_position(
    gw: RunningGateway, api: httpx.Client
) -> None:
    seller_id = gw.registry.add_seller("Sakura Shop", [SELLER])

    def row(buyer: str = BUYER, ref: str = "ORD-1", **change: Any) -> dict[str, Any]:
        return {"seller": seller_id, "buyer": buyer, "order_ref": ref, "placed_at": PLACED} | change

    rows = [
        row(),
        row("kim@", "ORD-2"),
        row(ref="ORD-3", placed_at="2026-11-01T10:00:00"),
        row(ref="ORD-4", seller=999),
        row("lee@buyer-mail.example", "ORD-5"),
        row(),  # the first one again
    ]
    failed = [
        {"line": 2, "error": "buyer: not a valid mailbox: 'kim@'"},
        {"line": 3, "error": "placed_at: Input should have timezone info"},
        {"line": 4, "error": "no seller 999"},
    ]
    first = _ok(api.post("/v1/orders/import", json=rows))
    assert first == {"imported": 2, "known": 1, "failed": failed}
    again = _ok(api.post("/v1/orders/import", json=rows))
    assert again == {"imported": 0, "known": 3, "failed": failed}

    buyer_id, _ = gw.registry.add_buyer(BUYER)
    assert gw.registry.show_pair(seller_id, buyer_id).pair_id
    # The body must be a list of objects.
    assert _error(api.post("/v1/orders/import", json=row()), 422).startswith("body: ")


def test_buyer_opt_out_and_opt_in(gw: RunningGateway, api: httpx.Client) -> None:
    parties = gw.register(buyer=BUYER)
    address = {"address": BUYER}
    opted_out = _ok(api.post("/v1/buyers/opt-out", json=address))
    assert opted_out == {"buyer_id": parties.buyer_id, "opted_out": True, "changed": True}
    assert _standing(gw, parties).buyer_opted_out
    again = _ok(api.post("/v1/buyers/opt-out", json=address))
    assert again == {**opted_out, "changed": False}

    opted_in = _ok(api.post("/v1/buyers/opt-in", json=address))
    assert opted_in == {"buyer_id": parties.buyer_id, "opted_out": False, "changed": True}
    assert not _standing(gw, parties).buyer_opted_out
    assert _error(api.post("/v1/buyers/opt-in", json={}), 422) == "address: Field required"


def test_seller_suspend_and_reinstate(gw: RunningGateway, api: httpx.Client) -> None:
    parties = gw.register()
    url = f"/v1/sellers/{parties.seller_id}"
    suspended = _ok(api.post(f"{url}/suspend"))
    assert suspended == {"seller_id": parties.seller_id, "suspended": True, "changed": True}
    assert _standing(gw, parties).seller_suspended
    assert _ok(api.post(f"{url}/suspend")) == {**suspended, "changed": False}

    reinstated = _ok(api.post(f"{url}/reinstate"))
    assert reinstated == {"seller_id": parties.seller_id, "suspended": False, "changed": True}
    assert not _standing(gw, parties).seller_suspended


def test_seller_vacation_and_pre_purchase(gw: RunningGateway, api: httpx.Client) -> None:
    parties = gw.register()
    url = f"/v1/sellers/{parties.seller_id}"
    period = {"starts_at": "2026-12-20T00:00:00Z", "ends_at": "2026-12-27T09:00:00+09:00"}
    vacation = _ok(api.post(f"{url}/vacations", json=period), 201)
    assert vacation == {
        "vacation_id": vacation["vacation_id"],
        "seller_id": parties.seller_id,
        "starts_at": "2026-12-20T00:00:00+00:00",
        "ends_at": "2026-12-27T09:00:00+09:00",
    }
    with gw.gateway.database.reading() as session:
        stored = session.scalars(select(Vacation)).one()
    assert stored.id == vacation["vacation_id"]
    assert (stored.starts_at, stored.ends_at) == (
        datetime(2026, 12, 20, tzinfo=UTC),
        datetime(2026, 12, 27, tzinfo=UTC),
    )
    naive = {**period, "starts_at": "2026-12-20T00:00:00"}
    error = _error(api.post(f"{url}/vacations", json=naive), 422)
    assert error == "starts_at: Input should have timezone info"

    for allowed in (True, False):
        setting = _ok(api.put(f"{url}/pre-purchase", json={"allowed": allowed}))
        assert setting == {"seller_id": parties.seller_id, "pre_purchase": allowed}
        assert _standing(gw, parties).pre_purchase_allowed is allowed


def test_no_response_needed_and_the_reports(gw: RunningGateway, api: httpx.Client) -> None:
    parties = gw.register()
    second = make_traffic(gw.port, parties)
    # The gateway's Message-ID of that buyer message, as the seller received it.
    delivered = [read(path) for path in gw.delivered(4)]
    [message_id] = [str(m["Message-ID"]) for m in delivered if str(m["Subject"]) == "Thanks!"]

    marked = _ok(api.post(f"/v1/messages/{quote(message_id, safe='')}/no-response-needed"))
    assert marked == {"message_id": second, "no_response_needed": True}
    # By its archive id too; marking twice is harmless.
    assert _ok(api.post(f"/v1/messages/{second}/no-response-needed")) == marked
    # Its wait is closed, so the next buyer message opens another one.
    buyer_writes(gw.port, parties, "And the invoice?")

    seller = parties.seller_id
    times = _ok(api.get("/v1/reports/response-times", params={"seller": seller}))
    assert times == {
        "sellers": [
            {
                "seller_id": seller,
                "seller": "Sakura Shop",
                "buyer_messages": 2,
                "average_response_hours": 0.0,
                "answered_within_24h": 0.5,
                "answered_later": 0.0,
                "unanswered": 0.5,
                "no_response_needed": 1,
            }
        ]
    }
    assert _ok(api.get("/v1/reports/response-times", params={"seller": 999})) == {"sellers": []}
    later = {"since": "2099-01-01T00:00:00Z"}
    assert _ok(api.get("/v1/reports/response-times", params=later)) == {"sellers": []}

    important = {"seller_id": seller, "seller": "Sakura Shop", "messages": 2, "important": 1}
    assert _ok(api.get("/v1/reports/important")) == {
        "threshold": 0.2,
        "sellers": [{**important, "share": 0.5}],
    }
    assert _ok(api.get("/v1/reports/important", params={"threshold": 0.5})) == {
        "threshold": 0.5,
        "sellers": [],
    }
    assert _ok(api.get("/v1/reports/important", params=later)) == {
        "threshold": 0.2,
        "sellers": [],
    }
    naive = {"since": "2026-11-01T00:00:00"}
    error = _error(api.get("/v1/reports/important", params=naive), 422)
    assert error == "since: Input should have timezone info"


def test_no_response_needed_refuses_what_it_cannot_mark(
    gw: RunningGateway, api: httpx.Client
) -> None:
    parties = gw.register()
    from_seller = seller_writes(gw.port, parties, "Shipped")
    answered = buyer_writes(gw.port, parties, "Thanks")
    waiting = buyer_writes(gw.port, parties, "One more thing")  # the first still waits

    def mark(message: object) -> httpx.Response:
        return api.post(f"/v1/messages/{message}/no-response-needed")

    assert _error(mark(999_999), 404) == "no message 999999"
    assert _error(mark(from_seller), 400) == f"message {from_seller} is not a buyer's message"
    assert _error(mark(waiting), 400).startswith(f"message {waiting} opened no wait")
    assert _ok(mark(answered))["message_id"] == answered


# -- the same errors as the CLI --------------------------------------------------------------


def test_registry_errors_are_worded_as_the_cli_words_them(
    tmp_path: Path, db_url: str, gw: RunningGateway, api: httpx.Client
) -> None:
    config = operator_config(tmp_path, db_url)
    seller = gw.register().seller_id
    backwards = {"starts_at": "2026-12-27T00:00:00Z", "ends_at": "2026-12-20T00:00:00Z"}

    invalid = _error(api.post("/v1/buyers/opt-out", json={"address": "kim@"}), 400)
    assert invalid == cli_error(config, "buyer", "opt-out", "kim@")
    unknown = _error(api.post("/v1/sellers/999/suspend"), 404)
    assert unknown == cli_error(config, "seller", "suspend", "999")
    ends_first = _error(api.post(f"/v1/sellers/{seller}/vacations", json=backwards), 400)
    assert ends_first == cli_error(
        config, "seller", "vacation", str(seller), "--from", backwards["starts_at"],
        "--until", backwards["ends_at"],
    )  # fmt: skip


def test_an_order_row_is_refused_in_the_same_words_by_every_way_in(
    tmp_path: Path, db_url: str, gw: RunningGateway, api: httpx.Client
) -> None:
    """One bad row: `order import`, POST /v1/orders/import and POST /v1/orders agree."""
    config = operator_config(tmp_path, db_url)
    seller = gw.registry.add_seller("Sakura Shop", [SELLER])
    row = {"seller": seller, "buyer": "kim@", "order_ref": "ORD-1", "placed_at": PLACED}
    orders = tmp_path / "orders.jsonl"
    orders.write_text(json.dumps(row) + "\n")

    result = run_cli(config, "order", "import", str(orders), "--json")
    assert result.returncode == 1, result.stderr
    [cli] = one_json_object(result.stdout)["failed"]
    [imported] = _ok(api.post("/v1/orders/import", json=[row]))["failed"]
    single = _error(api.post("/v1/orders", json=row), 422)

    assert cli == imported == {"line": 1, "error": "buyer: not a valid mailbox: 'kim@'"}
    assert single == cli["error"]


# -- errors outside the routes' own checks ---------------------------------------------------


def test_unknown_routes_and_methods_answer_in_the_error_shape(api: httpx.Client) -> None:
    _error(api.get("/v1/nothing-here"), 404)
    _error(api.delete("/v1/orders"), 405)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param(f"/v1/sellers/{2**63}/suspend", 404, id="seller-id-past-bigint"),
        pytest.param(f"/v1/messages/{2**63}/no-response-needed", 404, id="message-id-past-bigint"),
        pytest.param("/v1/messages/%C2%B2/no-response-needed", 404, id="message-superscript-two"),
    ],
)
def test_a_reference_that_cannot_exist_is_not_found(
    api: httpx.Client, path: str, status: int
) -> None:
    """Not a 500: such an id cannot be in the store, so nothing by it is found."""
    _error(api.post(path), status)
