"""Text PostgreSQL cannot store (NUL, lone surrogates), duplicate JSON keys and the JSON error shape.

SQLite stores NUL and `\\u0000` happily, so these only prove themselves on PostgreSQL, where
CI runs them too; on both backends they assert the answer, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client, override_settings

from gateways.models import Country, Gateway, GatewayRoute
from payments.models import Transaction
from testing.factories import deposit_body

pytestmark = pytest.mark.usefixtures("demo")

DEPOSIT = deposit_body(customer_id="cus_1", amount="10.00", payment_details=None, metadata=None)


def post_json(api: Any, raw: str, **headers: str) -> Any:
    return api.post("/api/v1/deposits", data=raw, content_type="application/json", **headers)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code, body
    return body["error"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"metadata": {"k": "a\u0000b"}}, "metadata", id="nul-in-metadata-value"),
        pytest.param({"metadata": {"a\u0000b": "v"}}, "metadata", id="nul-in-metadata-key"),
        pytest.param({"metadata": {"k": ["x", {"deep": "\ud800"}]}}, "metadata", id="surrogate-deep-in-metadata"),
        pytest.param({"metadata": {"\udfff": 1}}, "metadata", id="surrogate-metadata-key"),
        pytest.param({"customer_id": "cus\u0000"}, "customer_id", id="nul-in-customer-id"),
        pytest.param({"payment_details": {"iban\u0000": "DE89"}}, "payment_details", id="nul-in-details-key"),
        pytest.param({"payment_details": {"iban": "\ud83d"}}, "payment_details", id="surrogate-in-details-value"),
        pytest.param({"amount": "1\u0000"}, "amount", id="nul-in-amount"),
    ],
)
def test_unstorable_text_anywhere_in_a_json_body_is_a_400_naming_the_field(
    api: Any, changes: dict[str, Any], field: str
) -> None:
    raw = json.dumps({**DEPOSIT, **changes})  # ensure_ascii: NUL and surrogates travel as \u escapes

    error = assert_error(post_json(api, raw), 400, "validation_error")

    assert field in error["fields"]
    assert not Transaction.objects.exists()


def test_other_control_characters_are_stored_and_read_back_as_given(api: Any) -> None:
    metadata = {"tab\tkey": "\x01\x1f\x7f\u0085\u2028\ufeff", "bell\x07": ["\x08", {"esc": "\x1b[31m"}]}

    response = post_json(api, json.dumps({**DEPOSIT, "customer_id": "cus\x01", "metadata": metadata}))

    assert response.status_code == 202, response.content
    shown = api.get(f"/api/v1/transactions/{response.json()['id']}").json()
    assert (shown["customer_id"], shown["metadata"]) == ("cus\x01", metadata)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('{"customer_id": "a", "customer_id": "b", "country": "DE", "amount": "1", "currency": "EUR"}',
                     id="top-level"),
        pytest.param('{"customer_id": "a", "country": "DE", "amount": "1", "currency": "EUR", '
                     '"metadata": {"k": 1, "k": 2}}', id="nested"),
    ],
)  # fmt: skip
def test_json_with_a_duplicate_key_is_refused(api: Any, raw: str) -> None:
    error = assert_error(post_json(api, raw), 400, "parse_error")

    assert "Duplicate key" in error["message"]
    assert not Transaction.objects.exists()


@pytest.mark.parametrize("key", ["order\u00001", "order\x1b1", "\x7f"])
def test_an_idempotency_key_with_control_characters_is_refused(api: Any, key: str) -> None:
    error = assert_error(post_json(api, json.dumps(DEPOSIT), HTTP_IDEMPOTENCY_KEY=key), 400, "validation_error")

    assert "Idempotency-Key" in error["fields"]
    assert not Transaction.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/transactions?gateway=a%00b",
        "/api/v1/transactions?a%00=1",
        "/api/v1/transactions/a%00b",
        "/admin/gateways/gateway/?q=a%00b",
    ],
)
def test_a_nul_in_the_url_is_a_400(api: Any, path: str) -> None:
    assert_error(api.get(path), 400, "bad_request")


def test_a_nul_in_a_callback_gateway_code_is_a_400(client: Client) -> None:
    assert_error(
        client.post("/api/v1/callbacks/a%00b", data=b"{}", content_type="application/json"), 400, "bad_request"
    )


@override_settings(DEBUG=True)
@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v2/transactions", "/api/", "/api/v1/transactions/x/y"])
def test_an_unknown_api_path_is_a_json_404_with_debug_on(api: Any, path: str) -> None:
    assert_error(api.get(path), 404, "not_found")
    assert_error(api.post(path, data="{}", content_type="application/json"), 404, "not_found")


@override_settings(DEBUG=True)
@pytest.mark.parametrize("path", ["/api/docs", "/api/schema"])
def test_a_page_named_without_its_slash_still_leads_to_it(client: Client, path: str) -> None:
    response = client.get(f"{path}?format=json")

    assert (response.status_code, response["Location"]) == (301, f"{path}/?format=json")


@override_settings(DEBUG=True)
def test_an_unhandled_error_under_api_is_a_json_500_with_debug_on(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("card 4111111111111111 in a local variable")

    monkeypatch.setattr("payments.apis.transactions.transaction_get", broken)
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=api._credentials["HTTP_AUTHORIZATION"])

    response = client.get("/api/v1/transactions/00000000-0000-0000-0000-000000000000")

    assert_error(response, 500, "internal_error")
    assert b"4111111111111111" not in response.content


def test_route_currencies_and_types_must_be_lists_of_known_codes() -> None:
    route = GatewayRoute(country=Country.objects.get(code="DE"), gateway=Gateway.objects.get(code="globex"))
    for currencies, types in [(["EU\u0000"], ["deposit"]), ("EUR", ["deposit"]), (["EUR"], ["refund\u0000"])]:
        route.currencies, route.transaction_types = currencies, types
        with pytest.raises(ValidationError):
            route.full_clean()
    route.currencies, route.transaction_types = ["EUR"], ["withdrawal"]
    route.full_clean()
