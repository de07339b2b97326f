"""The merchant API's contract (CONTRACT §1), without a worker: nothing here is processed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from payments.models import ClientAPIKey, Transaction
from testing.api import assert_error
from testing.factories import DEPOSIT, IBAN

pytestmark = pytest.mark.usefixtures("demo")


def post(api: Any, path: str, body: Any, **headers: str) -> Any:
    return api.post(path, data=json.dumps(body), content_type="application/json", **headers)


def test_deposit_is_accepted_pending_with_details_masked(api: Any) -> None:
    response = post(api, "/api/v1/deposits", DEPOSIT)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert body["type"] == "deposit"
    assert body["amount"] == "25.00"
    assert (body["country"], body["currency"], body["customer_id"]) == ("DE", "EUR", "cus_42")
    assert body["payment_details"] == {"iban": "DE89************3000", "holder_name": "J*** R**"}
    assert body["metadata"] == {"order": "A-1001"}
    assert body["gateway"] is None and body["failure_reason"] is None and body["attempts"] == []
    assert response["Location"] == f"/api/v1/transactions/{body['id']}"
    assert IBAN not in response.content.decode()
    txn = Transaction.objects.get(pk=body["id"])
    assert txn.payment_details["iban"] == IBAN


def test_payment_details_are_encrypted_in_the_database(api: Any) -> None:
    txn_id = post(api, "/api/v1/deposits", DEPOSIT).json()["id"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT payment_details FROM payments_transaction WHERE id = %s",
            [txn_id if connection.vendor == "postgresql" else txn_id.replace("-", "")],
        )
        raw = bytes(cursor.fetchone()[0])
    assert IBAN.encode() not in raw
    assert b"Jane" not in raw


def test_withdrawal_is_a_withdrawal(api: Any) -> None:
    body = post(api, "/api/v1/withdrawals", {**DEPOSIT, "country": "US", "currency": "USD"}).json()
    assert body["type"] == "withdrawal"
    assert Transaction.objects.get(pk=body["id"]).type == "withdrawal"


def test_xml_in_and_out(api: Any) -> None:
    xml = (
        "<transaction><customer_id>cus_42</customer_id><country>DE</country>"
        "<amount>25.00</amount><currency>EUR</currency>"
        "<payment_details><iban>DE89370400440532013000</iban></payment_details></transaction>"
    )
    response = api.post("/api/v1/deposits", data=xml, content_type="application/xml", HTTP_ACCEPT="application/xml")
    assert response.status_code == 202, response.content
    assert response["Content-Type"].startswith("application/xml")
    from defusedxml.ElementTree import fromstring

    root = fromstring(response.content)
    assert root.tag == "transaction"
    assert root.findtext("status") == "pending"
    assert root.findtext("amount") == "25.00"
    assert root.findtext("payment_details/iban") == "DE89************3000"


def test_text_xml_is_accepted(api: Any) -> None:
    xml = (
        "<transaction><customer_id>c</customer_id><country>GB</country>"
        "<amount>1</amount><currency>GBP</currency></transaction>"
    )
    response = api.post("/api/v1/deposits", data=xml, content_type="text/xml")
    assert response.status_code == 202, response.content
    assert response.json()["amount"] == "1.00"


@pytest.mark.parametrize(
    ("amount", "currency", "country", "ok"),
    [
        ("25.00", "EUR", "DE", True),
        ("25", "EUR", "DE", True),
        ("25.001", "EUR", "DE", False),
        ("0", "EUR", "DE", False),
        ("-5.00", "EUR", "DE", False),
        ("NaN", "EUR", "DE", False),
        ("Infinity", "EUR", "DE", False),
        ("1e3", "EUR", "DE", False),
        ("99999999999999999999999", "EUR", "DE", False),
        ("1000000.01", "EUR", "DE", False),
        ("12,50", "EUR", "DE", False),
        ("", "EUR", "DE", False),
    ],
    ids=[
        "plain",
        "integer",
        "too-many-decimals",
        "zero",
        "negative",
        "nan",
        "infinity",
        "exponent",
        "huge",
        "over-maximum",
        "comma",
        "empty",
    ],
)
def test_amount_rules(api: Any, amount: str, currency: str, country: str, ok: bool) -> None:
    response = post(api, "/api/v1/deposits", {**DEPOSIT, "amount": amount, "currency": currency, "country": country})
    if ok:
        assert response.status_code == 202, response.content
    else:
        assert "amount" in assert_error(response, 400, "validation_error")["fields"]
    assert Transaction.objects.count() == (1 if ok else 0)


def test_json_number_amount_is_read_as_a_decimal(api: Any) -> None:
    raw = json.dumps({**DEPOSIT, "amount": "__AMOUNT__"}).replace('"__AMOUNT__"', "19.99")
    response = api.post("/api/v1/deposits", data=raw, content_type="application/json")
    assert response.status_code == 202, response.content
    assert response.json()["amount"] == "19.99"


@pytest.mark.parametrize(
    "raw", ['{"amount": NaN}', '{"amount": Infinity}', '{"amount": -Infinity}'], ids=["nan", "inf", "-inf"]
)
def test_json_constants_are_refused(api: Any, raw: str) -> None:
    assert_error(api.post("/api/v1/deposits", data=raw, content_type="application/json"), 400, "parse_error")


@pytest.mark.parametrize(
    ("currency", "amount", "ok"),
    [("JPY", "100", True), ("JPY", "100.5", False), ("BHD", "1.234", True), ("BHD", "1.2345", False)],
    ids=["jpy-whole", "jpy-fraction", "bhd-three", "bhd-four"],
)
def test_currency_minor_units(api: Any, currency: str, amount: str, ok: bool) -> None:
    response = post(api, "/api/v1/deposits", {**DEPOSIT, "amount": amount, "currency": currency})
    if ok:
        # Valid money, but no demo route takes this currency to DE.
        assert_error(response, 422, "no_route")
    else:
        assert "amount" in assert_error(response, 400)["fields"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer_id": 42}, "customer_id"),
        ({"country": "Germany"}, "country"),
        ({"country": 1}, "country"),
        ({"currency": "XXY"}, "currency"),
        ({"amount": 25.5}, None),  # a JSON number is fine; a float never reaches the code
        ({"amount": True}, "amount"),
        ({"amount": None}, "amount"),
        ({"payment_details": {"iban": 123}}, "payment_details"),
        ({"payment_details": "DE89"}, "payment_details"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"metadata": {"blob": "x" * 5000}}, "metadata"),
        ({"status": "completed"}, "status"),
        ({"gateway": "acmepay"}, "gateway"),
    ],
    ids=[
        "int-customer",
        "long-country",
        "int-country",
        "unknown-currency",
        "json-number",
        "bool-amount",
        "null-amount",
        "int-detail",
        "string-details",
        "list-metadata",
        "big-metadata",
        "server-owned-status",
        "server-owned-gateway",
    ],
)
def test_strict_types(api: Any, change: dict[str, Any], field: str | None) -> None:
    body = {**DEPOSIT, **change}
    raw = json.dumps(body).replace('"amount": 25.5', '"amount": 25.50')
    response = api.post("/api/v1/deposits", data=raw, content_type="application/json")
    if field is None:
        assert response.status_code == 202, response.content
    else:
        assert field in assert_error(response, 400, "validation_error")["fields"]


def test_missing_fields_are_named(api: Any) -> None:
    fields = assert_error(post(api, "/api/v1/deposits", {}), 400, "validation_error")["fields"]
    assert {"customer_id", "country", "amount", "currency"} <= set(fields)


@pytest.mark.parametrize(
    ("content_type", "raw", "status", "code"),
    [
        ("application/json", b"{not json", 400, "parse_error"),
        ("application/json", b"[1, 2]", 400, "validation_error"),
        ("application/json", b'"text"', 400, "validation_error"),
        ("application/json", b"\xff\xfe", 400, "parse_error"),
        ("application/json", b"[" * 5000 + b"]" * 5000, 400, "parse_error"),
        ("application/xml", b"<transaction><amount>1</amount>", 400, "parse_error"),
        (
            "application/xml",
            b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<transaction><customer_id>&x;</customer_id></transaction>",
            400,
            "parse_error",
        ),
        (
            "application/xml",
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            b"<transaction><customer_id>&c;</customer_id></transaction>",
            400,
            "parse_error",
        ),
        ("text/plain", b"hello", 415, "unsupported_media_type"),
    ],
    ids=[
        "broken-json",
        "json-list",
        "json-string",
        "bad-utf8",
        "deep-json",
        "broken-xml",
        "xxe",
        "entity-bomb",
        "text-plain",
    ],
)
def test_malformed_bodies(api: Any, content_type: str, raw: bytes, status: int, code: str) -> None:
    assert_error(api.post("/api/v1/deposits", data=raw, content_type=content_type), status, code)
    assert Transaction.objects.count() == 0


def test_oversized_body_is_413(api: Any, settings: Any) -> None:
    big = {**DEPOSIT, "metadata": {"x": "y" * (settings.PAYGATE_MAX_BODY_BYTES + 10)}}
    assert_error(post(api, "/api/v1/deposits", big), 413, "payload_too_large")
    assert Transaction.objects.count() == 0


def test_no_route_is_422(api: Any) -> None:
    error = assert_error(post(api, "/api/v1/deposits", {**DEPOSIT, "country": "FR"}), 422, "no_route")
    assert error["fields"]["country"] == "FR"
    assert_error(post(api, "/api/v1/deposits", {**DEPOSIT, "currency": "USD"}), 422, "no_route")
    assert Transaction.objects.count() == 0


def test_unhealthy_routes_do_not_reject(api: Any) -> None:
    from gateways.models import Gateway

    Gateway.objects.update(health_status=Gateway.Health.UNHEALTHY)
    assert post(api, "/api/v1/deposits", DEPOSIT).status_code == 202


def test_disabled_gateways_leave_no_route(api: Any) -> None:
    from gateways.models import Gateway

    Gateway.objects.filter(code__in=["acmepay", "soapbank"]).update(is_active=False)
    assert_error(post(api, "/api/v1/deposits", DEPOSIT), 422, "no_route")


@pytest.mark.parametrize(
    "authorization",
    [None, "Api-Key nope.nope", "Bearer x", "Api-Key ", "Api-Key \u00e9"],
    ids=["missing", "wrong", "wrong-scheme", "empty", "non-ascii"],
)
def test_authentication_is_required(client: Any, authorization: str | None) -> None:
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.post("/api/v1/deposits", data=DEPOSIT, content_type="application/json", **headers)
    assert_error(response, 401)
    assert response["WWW-Authenticate"] == "Api-Key"
    assert_error(client.get("/api/v1/transactions", **headers), 401)


def test_revoked_key_stops_working(api: Any, api_key: str) -> None:
    assert api.get("/api/v1/transactions").status_code == 200
    ClientAPIKey.objects.update(revoked=True)
    assert_error(api.get("/api/v1/transactions"), 401)


def test_keys_are_stored_hashed(api_key: str) -> None:
    stored = ClientAPIKey.objects.get()
    assert api_key not in stored.hashed_key and stored.hashed_key.startswith("sha512$$")


def test_idempotent_replay_returns_the_original(api: Any) -> None:
    first = post(api, "/api/v1/deposits", DEPOSIT, HTTP_IDEMPOTENCY_KEY="order-1001")
    again = post(api, "/api/v1/deposits", DEPOSIT, HTTP_IDEMPOTENCY_KEY="order-1001")
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Transaction.objects.count() == 1


def test_idempotency_key_with_a_different_body_is_409(api: Any) -> None:
    post(api, "/api/v1/deposits", DEPOSIT, HTTP_IDEMPOTENCY_KEY="k")
    assert_error(
        post(api, "/api/v1/deposits", {**DEPOSIT, "amount": "26.00"}, HTTP_IDEMPOTENCY_KEY="k"),
        409,
        "idempotency_conflict",
    )
    # A deposit and a withdrawal are different requests too.
    assert_error(post(api, "/api/v1/withdrawals", DEPOSIT, HTTP_IDEMPOTENCY_KEY="k"), 409)
    assert Transaction.objects.count() == 1


def test_idempotency_keys_are_per_client(api: Any, other_api: Any) -> None:
    a = post(api, "/api/v1/deposits", DEPOSIT, HTTP_IDEMPOTENCY_KEY="shared").json()
    b = post(other_api, "/api/v1/deposits", DEPOSIT, HTTP_IDEMPOTENCY_KEY="shared").json()
    assert a["id"] != b["id"]


def test_idempotency_key_too_long_is_400(api: Any) -> None:
    assert_error(post(api, "/api/v1/deposits", DEPOSIT, HTTP_IDEMPOTENCY_KEY="k" * 256), 400)


def test_other_clients_transactions_are_404(api: Any, other_api: Any) -> None:
    txn_id = post(api, "/api/v1/deposits", DEPOSIT).json()["id"]
    assert api.get(f"/api/v1/transactions/{txn_id}").status_code == 200
    assert_error(other_api.get(f"/api/v1/transactions/{txn_id}"), 404, "not_found")
    assert other_api.get("/api/v1/transactions").json()["count"] == 0
    assert other_api.get("/api/v1/transactions?country=DE").json()["count"] == 0


def test_unknown_and_malformed_ids_are_404(api: Any) -> None:
    assert_error(api.get("/api/v1/transactions/00000000-0000-0000-0000-000000000000"), 404)
    assert_error(api.get("/api/v1/transactions/not-a-uuid"), 404)


def test_list_filters_and_pagination(api: Any) -> None:
    post(api, "/api/v1/deposits", DEPOSIT)
    post(api, "/api/v1/withdrawals", DEPOSIT)
    post(api, "/api/v1/deposits", {**DEPOSIT, "country": "GB", "currency": "GBP"})
    assert api.get("/api/v1/transactions").json()["count"] == 3
    assert api.get("/api/v1/transactions?type=withdrawal").json()["count"] == 1
    assert api.get("/api/v1/transactions?country=GB").json()["count"] == 1
    assert api.get("/api/v1/transactions?status=pending").json()["count"] == 3
    assert api.get("/api/v1/transactions?status=completed").json()["count"] == 0
    assert api.get("/api/v1/transactions?gateway=acmepay").json()["count"] == 0
    page = api.get("/api/v1/transactions?page_size=2").json()
    assert len(page["results"]) == 2 and page["next"]
    assert_error(api.get("/api/v1/transactions?status=bogus"), 400)
    assert_error(api.get("/api/v1/transactions?colour=red"), 400)
    assert_error(api.get("/api/v1/transactions?page=99"), 404)


def test_list_query_count_does_not_grow_with_rows(api: Any) -> None:
    for _ in range(3):
        post(api, "/api/v1/deposits", DEPOSIT)
    with CaptureQueriesContext(connection) as few:
        api.get("/api/v1/transactions")
    for _ in range(7):
        post(api, "/api/v1/deposits", DEPOSIT)
    with CaptureQueriesContext(connection) as many:
        assert api.get("/api/v1/transactions").json()["count"] == 10
    assert len(many) == len(few)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/v1/deposits", 405, "method_not_allowed"),
        ("delete", "/api/v1/transactions", 405, "method_not_allowed"),
        ("get", "/api/v1/nothing-here", 404, "not_found"),
    ],
    ids=["get-deposits", "delete-list", "unknown-path"],
)
def test_other_errors_have_the_same_shape(api: Any, method: str, path: str, status: int, code: str) -> None:
    assert_error(getattr(api, method)(path), status, code)


def test_rate_limit_per_api_key(api: Any, other_api: Any, settings: Any) -> None:
    settings.PAYGATE_RATE_LIMIT = "3/minute"
    statuses = [api.get("/api/v1/transactions").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = api.get("/api/v1/transactions")
    assert_error(limited, 429, "rate_limited")
    assert 0 < int(limited["Retry-After"]) <= 60
    assert other_api.get("/api/v1/transactions").status_code == 200  # another key has its own count


@pytest.mark.services
def test_rate_limit_windows_expire_in_redis(api: Any, settings: Any) -> None:
    from django.core.cache import cache

    settings.PAYGATE_RATE_LIMIT = "100/minute"
    assert api.get("/api/v1/transactions").status_code == 200
    assert api.get("/api/v1/transactions").status_code == 200
    client = cache._cache.get_client(write=True)
    [key] = client.keys(cache.make_key(f"ratelimit:{ClientAPIKey.objects.get().prefix}:*"))
    assert int(client.get(key)) == 2
    assert 0 < client.ttl(key) <= 61  # set on the window's first request, not pushed back by later ones


def test_expired_key_stops_working(api: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    ClientAPIKey.objects.update(expiry_date=timezone.now() - timedelta(seconds=1))
    assert_error(api.get("/api/v1/transactions"), 401)


def test_create_query_count_does_not_grow_with_gateways_or_routes(api: Any) -> None:
    from gateways.models import Country, Gateway, GatewayRoute

    post(api, "/api/v1/deposits", DEPOSIT)  # the customer exists from here on
    with CaptureQueriesContext(connection) as before:
        assert post(api, "/api/v1/deposits", DEPOSIT).status_code == 202
    germany = Country.objects.get(code="DE")
    for n in range(10):
        country = Country.objects.create(code=f"Q{n}", name=f"Q{n}", currency="EUR")
        gateway = Gateway.objects.create(
            code=f"extra{n}",
            name="x",
            data_format="json",
            base_url="http://127.0.0.1:9",
            api_key="k",
            callback_secret="s",
        )
        GatewayRoute.objects.create(country=country, gateway=gateway, priority=1)
        GatewayRoute.objects.create(country=germany, gateway=gateway, priority=10 + n, is_active=n % 2 == 0)
    with CaptureQueriesContext(connection) as reloading:  # the edits invalidated the cached routes
        assert post(api, "/api/v1/deposits", DEPOSIT).status_code == 202
    assert len(reloading) == len(before) + 1, [q["sql"][:80] for q in reloading.captured_queries]
    with CaptureQueriesContext(connection) as after:
        assert post(api, "/api/v1/deposits", DEPOSIT).status_code == 202
    assert len(after) == len(before) <= 8, [q["sql"][:80] for q in after.captured_queries]


def test_xml_output_escapes_client_chosen_keys_and_characters(api: Any) -> None:
    from defusedxml.ElementTree import fromstring

    metadata = {"x><injected>1</injected><y": "v", "ok": "a\x01b", "xmlns": "n"}
    response = api.post(
        "/api/v1/deposits",
        data=json.dumps({**DEPOSIT, "metadata": metadata}),
        content_type="application/json",
        HTTP_ACCEPT="application/xml",
    )
    assert response.status_code == 202
    root = fromstring(response.content)  # well-formed
    assert root.find(".//injected") is None
    entries = {e.get("key"): e.text for e in root.iter("entry")}
    assert entries == {"x><injected>1</injected><y": "v", "xmlns": "n"}
    assert root.findtext("metadata/ok") == "a\ufffdb"


def test_unknown_accept_falls_back_to_json(api: Any) -> None:
    response = api.get("/api/v1/transactions", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")


def _json_schema(schema: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema says it, for a validator of the latter."""
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _json_schema(value) for key, value in schema.items() if key != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if schema.get("nullable") else converted


def _declared_names(output: Any, body: dict[str, Any]) -> None:
    """`body` has exactly the fields `output` declares, and so has each object in a nested list."""
    fields = output.fields
    assert set(body) == set(fields)
    for name, field in fields.items():
        child = getattr(field, "child", None)
        if hasattr(child, "fields"):
            for item in body[name]:
                _declared_names(child, item)


def test_written_out_representation_matches_the_declared_shape(api: Any) -> None:
    """payments.representations writes the answers by hand (speed); the output serializers declare their
    shape for the schema: an answer has exactly the declared fields, and the served schema takes it."""
    from datetime import timedelta

    import jsonschema_rs
    import yaml

    from gateways.models import Gateway
    from payments.apis.transactions import TransactionOutput
    from payments.models import Attempt
    from payments.representations import transaction_representation

    first = post(api, "/api/v1/deposits", DEPOSIT).json()
    second = post(api, "/api/v1/withdrawals", {**DEPOSIT, "metadata": {"n": [1, {"x": None}]}}).json()
    acmepay, soapbank = Gateway.objects.get(code="acmepay"), Gateway.objects.get(code="soapbank")
    txn = Transaction.objects.get(pk=second["id"])
    Attempt.objects.create(transaction=txn, number=1, gateway=acmepay, outcome="error", error="timeout")
    Attempt.objects.create(transaction=txn, number=2, gateway=soapbank, outcome="accepted", gateway_payment_id="p")
    Transaction.objects.filter(pk=txn.pk).update(
        status="failed", failure_reason="gateway_failed", gateway=soapbank, gateway_reference="p",
        finished_at=txn.created_at + timedelta(seconds=1),
    )  # fmt: skip
    # Refunds (only a completed deposit has them; the representation does not care).
    from payments.models import Refund

    for amount, status in (("1.5", "succeeded"), ("2", "failed"), ("3", "pending")):
        Refund.objects.create(
            client=txn.client, transaction=txn, gateway=soapbank, amount=amount, currency=txn.currency,
            status=status, failure_reason="declined" if status == "failed" else None, reason=f"r{amount}",
        )  # fmt: skip
    components = _json_schema(yaml.safe_load(api.get("/api/schema/").content)["components"])
    validator = jsonschema_rs.Draft4Validator(
        {"$ref": "#/components/schemas/TransactionOutput", "components": components}
    )
    for txn_id in (first["id"], second["id"]):
        txn = Transaction.objects.select_related("customer", "gateway").get(pk=txn_id)
        body = json.loads(json.dumps(transaction_representation(txn)))
        _declared_names(TransactionOutput(), body)
        validator.validate(body)
        assert body == api.get(f"/api/v1/transactions/{txn_id}").json()
    assert [len(body["attempts"]), len(body["refunds"])] == [2, 3]
