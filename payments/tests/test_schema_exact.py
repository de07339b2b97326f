"""The schema of the merchant API says exactly what its validation accepts.

`make apicheck` checks it over HTTP with schemathesis against a live stack; here the pieces are
checked one by one: the amount patterns against `parse_amount`, bodies drawn from the schema (JSON
and XML form) against the serializer, and the edges the schema draws, through the API.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from io import BytesIO
from types import SimpleNamespace
from typing import Any

import jsonschema_rs
import pytest
from django.test import override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ParseError
from schemathesis.generation.jsonschema.builder import build
from schemathesis.transport.serialization import _sanitize_xml_name, serialize_xml_with_schema

from core.errors import ValidationFailed
from core.parsers import XMLParser, loads_strict_json
from core.text import first_unstorable
from payments.apis.inputs import IDEMPOTENCY_HEADER, idempotency_key
from payments.apis.transactions import TransactionCreateInput
from payments.methods import BEYOND_PATTERNS
from payments.money import AmountError, amount_pattern, parse_amount
from payments.schema import transaction_create_schema
from testing.factories import deposit_body

PROPERTY = settings(
    max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# A currency with each number of minor units.
CURRENCY_WITH_PLACES = {0: "JPY", 2: "EUR", 3: "BHD", 4: "CLF"}
MAXIMA = [Decimal("1000000"), Decimal("1000.5"), Decimal("999.999"), Decimal("0.5"), Decimal("1e20"), Decimal("7")]

DIGITS = st.text("0123456789", max_size=20)
NEAR = st.decimals(min_value=-2, max_value=2, places=6)
AMOUNT_TEXT = st.one_of(
    st.builds(lambda whole, point, fraction: whole + ("." + fraction if point else ""), DIGITS, st.booleans(), DIGITS),
    st.builds(lambda offset, zeros: format(offset, "f") + "0" * zeros, NEAR, st.integers(0, 20)),
    st.text(st.sampled_from("0123456789. -+eE\u0663\u00a0"), max_size=8),
)


def accepted_amount(text: str, *, places: int, maximum: Decimal) -> bool:
    try:
        parse_amount(text, currency=CURRENCY_WITH_PLACES[places], maximum=maximum)
    except AmountError:
        return False
    return True


@pytest.mark.parametrize("maximum", MAXIMA, ids=str)
@pytest.mark.parametrize("places", sorted(CURRENCY_WITH_PLACES))
@PROPERTY
@given(text=AMOUNT_TEXT, near_maximum=NEAR)
@example(text="0", near_maximum=Decimal(0))
@example(text="0.000000000000000001", near_maximum=Decimal(0))
@example(text="007", near_maximum=Decimal(0))
@example(text=" 5", near_maximum=Decimal(0))
@example(text="\u0665", near_maximum=Decimal(0))  # an Arabic-Indic five: a digit to Python's \d
def test_amount_pattern_is_parse_amount(places: int, maximum: Decimal, text: str, near_maximum: Decimal) -> None:
    pattern = amount_pattern(places=places, maximum=maximum)
    for candidate in (text, format(maximum + near_maximum.scaleb(-places), "f")):
        accepted = accepted_amount(candidate, places=places, maximum=maximum)
        assert (re.fullmatch(pattern, candidate) is not None) == accepted, candidate
        assert jsonschema_rs.is_valid({"type": "string", "pattern": pattern}, candidate) == accepted, candidate


HEADER_TEXT = st.text(st.sampled_from(list("\x00\t\x1f \x7f\x85\xa0\u2003\u3000ab")) | st.characters(), max_size=8)


@PROPERTY
@given(key=HEADER_TEXT | st.text(max_size=300))
@example(key="\x85")
@example(key="k" * 256)
def test_idempotency_key_schema_is_its_validation(key: str) -> None:
    try:
        idempotency_key(SimpleNamespace(headers={"Idempotency-Key": key}))  # type: ignore[arg-type]
        accepted = True
    except ValidationFailed:
        accepted = False
    assert jsonschema_rs.is_valid(IDEMPOTENCY_HEADER.type, key) == accepted


# --- Bodies drawn from the schema are accepted by the serializer --------------------------------


def _resolved(schema: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(schema))


def _keys_collide_as_xml(value: Any) -> bool:
    """Two keys that schemathesis writes as one element name (the apicheck hooks skip those too)."""
    if not isinstance(value, dict):
        return False
    names = [_sanitize_xml_name(key) for key in value]
    return len(set(names)) < len(names) or any(_keys_collide_as_xml(item) for item in value.values())


def _serializer_accepts(data: Any, *, transaction_type: str = "deposit", xml: bool = False) -> dict[str, Any]:
    """The serializer's errors, less those no pattern can state (a Luhn digit, an IBAN's mod-97, an
    expiry in the past), which the schema's descriptions give instead."""
    serializer = TransactionCreateInput(data=data, context={"transaction_type": transaction_type, "xml": xml})
    if serializer.is_valid():
        return {}
    errors = json.loads(json.dumps(serializer.errors))
    details = errors.get("payment_details")
    if isinstance(details, dict):
        details = {key: messages for key, messages in details.items() if set(messages) - BEYOND_PATTERNS}
        errors.pop("payment_details")
        if details:
            errors["payment_details"] = details
    return errors


@pytest.mark.django_db
@pytest.mark.parametrize("transaction_type", ["deposit", "withdrawal"])
@override_settings(PAYGATE_MAX_AMOUNT="5000.50")
def test_json_bodies_the_schema_allows_are_valid(transaction_type: str) -> None:
    schema = _resolved(transaction_create_schema(xml=False, withdrawal=transaction_type == "withdrawal"))
    validator = jsonschema_rs.Draft4Validator(schema)
    checked = 0
    methods: set[str] = set()

    @settings(max_examples=100, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=build(schema, draft=4, formats={}))
    def check(body: dict[str, Any]) -> None:
        nonlocal checked
        if first_unstorable(body) is not None:
            return  # NUL: refused everywhere, and no pattern can forbid it in a key (OpenAPI 3.0)
        assert validator.is_valid(body)
        data = loads_strict_json(json.dumps(body).encode())  # as the API reads it: numbers as Decimal
        assert _serializer_accepts(data, transaction_type=transaction_type) == {}, body
        methods.add(body.get("payment_method", ""))
        checked += 1

    check()
    assert checked > 50
    assert len(methods) >= 3, methods  # free-form and typed bodies both drawn


@pytest.mark.django_db
@override_settings(PAYGATE_MAX_AMOUNT="5000.50")
@pytest.mark.parametrize("transaction_type", ["deposit", "withdrawal"])
def test_xml_bodies_the_schema_allows_are_valid(transaction_type: str) -> None:
    schema = _resolved(transaction_create_schema(xml=True, withdrawal=transaction_type == "withdrawal"))
    parser = XMLParser()
    checked = 0

    @settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=build(schema, draft=4, formats={}))
    def check(body: dict[str, Any]) -> None:
        nonlocal checked
        if _keys_collide_as_xml(body):
            return
        raw = serialize_xml_with_schema(body, schema, resource_name=None)["data"]
        assert raw.startswith(b"<transaction>")
        try:
            data = parser.parse(BytesIO(raw))
        except ParseError as exc:
            raise AssertionError(f"{raw!r}: {exc}") from None
        assert _serializer_accepts(data, transaction_type=transaction_type, xml=True) == {}, raw
        checked += 1

    check()
    assert checked > 20


# --- The edges the schema draws, through the API ------------------------------------------------

DEPOSIT = deposit_body(payment_details=None, metadata=None)


def post(api: Any, body: Any) -> Any:
    return api.post("/api/v1/deposits", data=json.dumps(body), content_type="application/json")


def error_fields(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    return dict(response.json()["error"]["fields"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"country": "de"}, "country"),
        ({"country": " DE"}, "country"),
        ({"country": "\u00df"}, "country"),  # upper-cases to "SS"
        ({"currency": "eur"}, "currency"),
        ({"currency": "EUR "}, "currency"),
        ({"amount": " 25.00"}, "amount"),
        ({"amount": "025.00"}, "amount"),
        ({"amount": "\u0662\u0665"}, "amount"),  # Arabic-Indic 25
    ],
    ids=[
        "lower-country",
        "padded-country",
        "sharp-s",
        "lower-currency",
        "padded-currency",
        "padded-amount",
        "leading-zero",
        "arabic-digits",
    ],
)
def test_what_the_schema_forbids_is_refused(demo: None, api: Any, change: dict[str, str], field: str) -> None:
    assert field in error_fields(post(api, {**DEPOSIT, **change}))


@pytest.mark.parametrize(
    "change",
    [
        {"customer_id": "  cus_42\u3000"},  # white space around text is removed (docs/contract.md)
        {"payment_details": {"iban": " DE89370400440532013000 ", "note": "   "}},
        {"metadata": {"rate": 1.25, "nested": {"list": [1.5, "x"]}}},  # JSON numbers with a fraction
        {"amount": 25.5},
        {"amount": "0.50"},
        {"amount": "25.000000"},
    ],
    ids=["padded-customer", "padded-details", "fraction-in-metadata", "json-number", "below-one", "trailing-zeros"],
)
def test_what_the_schema_allows_is_accepted(demo: None, api: Any, change: dict[str, Any]) -> None:
    response = post(api, {**DEPOSIT, **change})
    assert response.status_code == 202, response.content


def test_xml_leaf_text_loses_xml_white_space_only(demo: None, api: Any) -> None:
    body = "<transaction><customer_id>c</customer_id><country>\n  DE\n</country><amount> 25.00 </amount>"
    accepted = api.post(
        "/api/v1/deposits", data=body + "<currency>EUR</currency></transaction>", content_type="application/xml"
    )
    assert accepted.status_code == 202, accepted.content
    refused = api.post(
        "/api/v1/deposits", data=body + "<currency>\u00a0EUR</currency></transaction>", content_type="application/xml"
    )
    assert "currency" in error_fields(refused)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("page=1", 200),
        ("page_size=200", 200),
        ("page=0", 400),
        ("page=-1", 400),
        ("page=01", 400),
        ("page=last", 400),
        ("page=", 400),
        ("page=99", 404),
        ("page_size=0", 400),
        ("page_size=201", 400),
        ("page_size=abc", 400),
        ("status=", 400),
        ("country=", 400),
        ("country=de", 400),
        ("gateway=%20acmepay", 400),
    ],
)
def test_list_parameters_are_read_as_documented(demo: None, api: Any, query: str, status: int) -> None:
    post(api, DEPOSIT)
    response = api.get(f"/api/v1/transactions?{query}")
    assert response.status_code == status, response.content
