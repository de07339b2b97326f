"""The deposit's schema has a body of its own for details collected on the pay page (CONTRACT §12), and
it is exactly what the API accepts; the pay page's scripts are the ones docs/security.md lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from django.test import override_settings

from checkout.scripts import PAY_PAGE_SCRIPTS, script_integrity
from payments.apis.transactions import DepositCreateInput
from payments.schema import transaction_create_schema

BASE = {"customer_id": "c", "country": "DE", "amount": "1.00", "currency": "EUR"}
URL = {"return_url": "https://shop.example/back"}


def _resolved(schema: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(schema))


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        pytest.param({**URL, "payment_method": "card"}, True, id="card"),
        pytest.param({**URL, "payment_method": "bank_account", "save_payment_method": True}, True, id="bank-save"),
        pytest.param({"payment_method": "card"}, False, id="no-return-url"),
        pytest.param({**URL, "payment_method": "wallet"}, False, id="wallet"),
        pytest.param({**URL, "payment_method": "card", "payment_method_id": "pm_1"}, True, id="a-saved-method-instead"),
        pytest.param({**URL, "payment_method": "redirect", "save_payment_method": True}, False, id="redirect-save"),
    ],
)
@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_the_collected_body_in_the_schema_is_what_the_api_accepts(body: dict[str, Any], valid: bool) -> None:
    full = {**BASE, **body}
    validator = jsonschema_rs.Draft4Validator(_resolved(transaction_create_schema(xml=False, deposit=True)))
    assert validator.is_valid(full) is valid
    serializer = DepositCreateInput(data=full, context={"transaction_type": "deposit"})
    assert serializer.is_valid() is valid, serializer.errors


def test_a_withdrawal_schema_has_no_collected_body() -> None:
    validator = jsonschema_rs.Draft4Validator(_resolved(transaction_create_schema(xml=False, withdrawal=True)))
    assert not validator.is_valid({**BASE, "payment_method": "card"})


def test_the_pay_pages_scripts_are_listed_in_the_security_docs_and_hashed() -> None:
    security = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text(encoding="utf-8")
    for path in PAY_PAGE_SCRIPTS:
        assert f"`checkout/static/{path}`" in security
        assert script_integrity(path).startswith("sha384-")
    with pytest.raises(ValueError):
        script_integrity("checkout/other.js")
