"""JSON number tokens: a large exponent or a long token is refused while parsing, never formatted.

`1e1000000000` is 12 bytes that `format(Decimal, "f")` turns into a gigabyte of digits, and an
exponent past Decimal's limits raises an arithmetic error: both must be a 400 before any money
rule runs, on deposits, withdrawals and refunds alike. A small exponent is never an amount
(400 naming the field), but free-form metadata may hold one: JSON encoders write `1e-05`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from gateways.models import Gateway
from payments.models import Customer, Refund, Transaction
from payments.money import AmountError, parse_amount
from payments.services import api_key_create

pytestmark = pytest.mark.django_db

PROPERTY = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

DIGITS = st.text("0123456789", min_size=1, max_size=30)
EXPONENT_TOKEN = st.builds(
    lambda mantissa, fraction, e, sign, exponent: f"{mantissa}{'.' + fraction if fraction else ''}{e}{sign}{exponent}",
    st.sampled_from(["0", "1", "25", "-1"]),
    st.none() | DIGITS,
    st.sampled_from(["e", "E"]),
    st.sampled_from(["", "+", "-"]),
    st.integers(0, 10**30).map(str) | st.integers(0, 500).map(str),
)
LONG_TOKEN = st.builds(
    lambda head, tail, fraction: f"{head}{tail}{'.' + fraction if fraction else ''}",
    st.sampled_from("123456789"),
    st.text("0123456789", min_size=64, max_size=5000),
    st.none() | DIGITS,
)
TOKEN = EXPONENT_TOKEN | LONG_TOKEN


@pytest.fixture
def api_and_deposit(demo: None) -> tuple[APIClient, Transaction]:
    client_row, key = api_key_create(client_name="numbers")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    deposit = Transaction.objects.create(
        client=client_row,
        customer=Customer.objects.create(client=client_row, reference="c1", country_id="DE"),
        type="deposit",
        amount="100.00",
        currency="EUR",
        country_id="DE",
        status="completed",
        gateway=Gateway.objects.get(code="acmepay"),
    )
    return api, deposit


def _body(token: str, where: str) -> bytes:
    if where == "metadata":
        head, tail = '"amount":"10.00","currency":"EUR","metadata":{"n":', "}}"
    else:
        head, tail = '"amount":', ',"currency":"EUR"}'
    return ('{"customer_id":"c","country":"DE",' + head + token + tail).encode()


def _parse_refuses(token: str) -> bool:
    mantissa, e, exponent = token.lower().partition("e")
    return len(token) > 64 or bool(e) and abs(int(exponent)) > 400


def _refused(response: Any, token: str, where: str = "amount") -> None:
    if _parse_refuses(token):
        assert response.status_code == 400, response.content
        assert response.json()["error"]["code"] == "parse_error", response.content
    elif where == "amount":
        assert response.status_code == 400, response.content
        assert "amount" in response.json()["error"]["fields"], response.content
    else:
        assert response.status_code == 202, response.content


@PROPERTY
@given(
    token=TOKEN,
    path=st.sampled_from(["/api/v1/deposits", "/api/v1/withdrawals"]),
    where=st.sampled_from(["amount", "metadata"]),
)
@example(token="1e100000000", path="/api/v1/deposits", where="amount")
@example(token="1e1000000000000000001", path="/api/v1/withdrawals", where="amount")
@example(token="1E-1000000000000000001", path="/api/v1/deposits", where="metadata")
@example(token="2" * 65, path="/api/v1/deposits", where="amount")
@example(token="1e2", path="/api/v1/deposits", where="amount")
@example(token="1e-05", path="/api/v1/deposits", where="metadata")
@example(token="1e401", path="/api/v1/deposits", where="metadata")
@example(token="1.7976931348623157e+308", path="/api/v1/deposits", where="metadata")
def test_an_exponent_or_a_long_number_is_refused_while_parsing(
    api_and_deposit: tuple[APIClient, Transaction], token: str, path: str, where: str
) -> None:
    api, _ = api_and_deposit
    before = Transaction.objects.count()

    response = api.post(path, data=_body(token, where), content_type="application/json")

    _refused(response, token, where)
    assert Transaction.objects.count() == before + (response.status_code == 202)


@PROPERTY
@given(token=TOKEN)
@example(token="1e1000000000")
@example(token="1e1000000000000000001")
@example(token="1E+1")
def test_a_refund_amount_with_an_exponent_or_too_long_is_refused(
    api_and_deposit: tuple[APIClient, Transaction], token: str
) -> None:
    api, deposit = api_and_deposit

    response = api.post(
        f"/api/v1/transactions/{deposit.pk}/refunds",
        data=('{"amount":' + token + "}").encode(),
        content_type="application/json",
    )

    _refused(response, token)
    assert not Refund.objects.exists()


@pytest.mark.parametrize("token", ["25", "25.5", "0.50", "1" * 18 + ".25"])
def test_a_plain_json_number_is_still_an_amount(api_and_deposit: tuple[APIClient, Transaction], token: str) -> None:
    api, _ = api_and_deposit

    response = api.post("/api/v1/deposits", data=_body(token, "amount"), content_type="application/json")

    assert response.status_code in (202, 400), response.content
    if response.status_code == 400:  # 19+ digit amounts pass the parser and meet the money rules
        assert response.json()["error"]["fields"]["amount"], response.content


@pytest.mark.parametrize("raw", ["1E+1000000000", "1E-1000000000", "1" * 40])
def test_a_huge_decimal_reaching_the_money_rules_is_refused_before_it_is_formatted(raw: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(Decimal(raw), currency="EUR", maximum=Decimal("1000000"))
