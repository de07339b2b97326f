"""Routes by payment method (CONTRACT §12): which routes serve a method, the admin's list, the API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from gateways.methods import validate_payment_methods
from gateways.models import GatewayRoute
from gateways.scores import ScoreKey
from gateways.selectors import route_list, route_ranking
from testing.factories import CARD, deposit_body

DEPOSIT = deposit_body(payment_details=None, metadata=None)


def _methods(code: str, methods: list[str]) -> None:
    GatewayRoute.objects.filter(country__code="DE", gateway__code=code).update(payment_methods=methods)


def _codes(**kwargs: Any) -> list[str]:
    return [route.gateway_code for route in route_list(country_code="DE", currency="EUR", **kwargs)]


def test_a_route_without_methods_serves_every_method_and_free_form_details(demo: None) -> None:
    for method in ("", "card", "bank_account", "wallet", "redirect"):
        assert _codes(transaction_type="deposit", payment_method=method) == ["acmepay", "soapbank"]


def test_a_route_with_methods_serves_only_those_and_free_form_details(demo: None) -> None:
    _methods("acmepay", ["bank_account"])
    assert _codes(transaction_type="deposit", payment_method="card") == ["soapbank"]
    assert _codes(transaction_type="deposit", payment_method="bank_account") == ["acmepay", "soapbank"]
    assert _codes(transaction_type="deposit", payment_method="") == ["acmepay", "soapbank"]
    _methods("soapbank", ["wallet"])
    assert _codes(transaction_type="deposit", payment_method="card") == []


def test_failover_order_holds_only_routes_that_serve_the_method(demo: None) -> None:
    _methods("acmepay", ["bank_account"])
    ranking = route_ranking(country_code="DE", currency="EUR", transaction_type="deposit", payment_method="card")
    assert [route.gateway_code for route in ranking.order] == ["soapbank"]


@pytest.mark.parametrize("value", [["cash"], "card", ["card", "card"], [1]])
def test_a_route_names_known_methods_only(value: Any) -> None:
    with pytest.raises(ValidationError):
        validate_payment_methods(value)


def test_scores_are_kept_per_method_and_free_form_keeps_its_old_key() -> None:
    plain = ScoreKey(gateway_id=1, country="DE", currency="EUR", transaction_type="deposit")
    card = ScoreKey(gateway_id=1, country="DE", currency="EUR", transaction_type="deposit", payment_method="card")
    assert plain.name == "routescore:1:DE:EUR:deposit"
    assert card.name == "routescore:1:DE:EUR:deposit:card"


def test_no_route_for_the_method_is_a_422(demo: None, api: Any) -> None:
    _methods("acmepay", ["wallet"])
    _methods("soapbank", ["wallet"])
    response = api.post(
        "/api/v1/deposits",
        data=json.dumps({**DEPOSIT, "payment_method": "card", "payment_details": CARD}),
        content_type="application/json",
    )
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "no_route"
    # Free-form details still find a route.
    free = api.post("/api/v1/deposits", data=json.dumps(DEPOSIT), content_type="application/json")
    assert free.status_code == 202


def test_the_gateway_list_shows_each_routes_methods(demo: None, api: Any) -> None:
    _methods("acmepay", ["card", "wallet"])
    gateways = {g["code"]: g for g in api.get("/api/v1/gateways").json()["gateways"]}
    routes = {route["country"]: route for route in gateways["acmepay"]["routes"]}
    assert routes["DE"]["payment_methods"] == ["card", "wallet"]
    assert routes["US"]["payment_methods"] == []


# --- What the adapters send ------------------------------------------------------------------------


def _request(**changes: Any) -> Any:
    from decimal import Decimal

    from gateways.types import PaymentRequest

    fields: dict[str, Any] = {
        "reference": "att_1",
        "transaction_id": "txn_1",
        "type": "deposit",
        "amount": Decimal("25.00"),
        "currency": "EUR",
        "country": "DE",
        "customer_id": "cus_42",
        "callback_url": "http://127.0.0.1:8000/api/v1/callbacks/acmepay",
    }
    return PaymentRequest(**{**fields, **changes})


def test_the_json_request_carries_the_method_and_its_details() -> None:
    from gateways.adapters.json_transformers import payment_body

    body = json.loads(payment_body(_request(payment_method="card", payment_details=CARD)))
    assert body["payment_method"] == "card" and body["payment_details"] == CARD
    plain = json.loads(payment_body(_request()))
    assert "payment_method" not in plain and "payment_details" not in plain


def test_the_soap_request_carries_one_element_per_field() -> None:
    from xml.etree import ElementTree

    from gateways.adapters.soap_transformers import process_payment_envelope

    envelope = process_payment_envelope(_request(payment_method="card", payment_details=CARD), api_key="k")
    ns = "{urn:paygate:sandbox}"
    operation = ElementTree.fromstring(envelope)[0][0]
    assert operation.findtext(f"{ns}PaymentMethod") == "card"
    details = operation.find(f"{ns}PaymentDetails")
    assert details is not None
    assert {child.tag.removeprefix(ns): child.text for child in details} == {
        "Number": CARD["number"],
        "ExpMonth": "12",
        "ExpYear": "2030",
        "Cvc": "123",
        "HolderName": "Jane Roe",
    }
    assert b"PaymentMethod" not in process_payment_envelope(_request(), api_key="k")


def test_the_request_never_shows_its_details_in_a_log_line() -> None:
    request = _request(payment_method="card", payment_details=CARD)
    assert CARD["number"] not in repr(request) and CARD["number"] not in str(request)
