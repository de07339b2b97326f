"""The sandbox's reading of payment methods and details (CONTRACT §12), over HTTP, JSON and SOAP."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import pytest

from sandbox.methods import details_seen, details_valid
from sandbox.tests.support import (
    SB,
    SOAP_ENV,
    CallbackReceiver,
    Sandbox,
    json_pay,
    payment_fields,
    soap_post,
    soap_result,
)

CARD = {"number": "4242424242424242", "exp_month": "12", "exp_year": "2030", "cvc": "123", "holder_name": "Jane Roe"}
IBAN = {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"}


def _record(gw: Sandbox, reference: str) -> dict[str, Any]:
    return next(p for p in gw.payments() if p["reference"] == reference)


def test_json_details_arrive_and_only_their_last_four_characters_are_kept(
    json_gw: Sandbox, receiver: CallbackReceiver
) -> None:
    fields = payment_fields(receiver)
    response = json_pay(json_gw, {**fields, "payment_method": "card", "payment_details": CARD})
    assert response.status_code == 202 and response.json()["status"] == "accepted"
    record = _record(json_gw, fields["reference"])
    assert record["payment_method"] == "card"
    assert record["payment_details"] == {
        "number": "4242",
        "exp_month": "12",
        "exp_year": "2030",
        "cvc": "***",
        "holder_name": " Roe",
    }
    assert "4242424242424242" not in json_gw.get("/_sandbox/payments").text


@pytest.mark.parametrize(
    ("method", "details"),
    [
        ("card", {**CARD, "number": "4242424242424241"}),
        ("bank_account", {**IBAN, "iban": "DE89370400440532013001"}),
        ("wallet", {"provider": "paypal", "account": "nobody"}),
        ("redirect", {"number": "4242424242424242"}),
    ],
    ids=["luhn", "iban", "wallet", "redirect-with-details"],
)
def test_json_invalid_details_are_declined(
    json_gw: Sandbox, receiver: CallbackReceiver, method: str, details: dict[str, str]
) -> None:
    fields = payment_fields(receiver)
    response = json_pay(json_gw, {**fields, "payment_method": method, "payment_details": details})
    assert response.status_code == 200
    assert response.json() == {"status": "declined", "reason": "invalid_payment_details"}


def test_json_without_a_method_is_as_before(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    fields = payment_fields(receiver)
    assert json_pay(json_gw, fields).status_code == 202
    record = _record(json_gw, fields["reference"])
    assert record["payment_method"] is None and record["payment_details"] == {}


def test_json_an_unknown_method_is_a_400(json_gw: Sandbox, receiver: CallbackReceiver) -> None:
    response = json_pay(json_gw, {**payment_fields(receiver), "payment_method": "cash", "payment_details": {}})
    assert response.status_code == 400


def _soap_pay(gw: Sandbox, fields: dict[str, str], method: str, details: dict[str, str]) -> Any:
    values = {
        "ApiKey": gw.api_key,
        "Reference": fields["reference"],
        "TransactionId": fields["transaction_id"],
        "Type": fields["type"],
        "Amount": fields["amount"],
        "Currency": fields["currency"],
        "Country": fields["country"],
        "CustomerId": fields["customer_id"],
        "CallbackUrl": fields["callback_url"],
        "PaymentMethod": method,
    }
    children = "".join(f"<sb:{name}>{escape(value)}</sb:{name}>" for name, value in values.items())
    pascal = {key: "".join(part.capitalize() for part in key.split("_")) for key in details}
    inner = "".join(f"<sb:{pascal[key]}>{escape(value)}</sb:{pascal[key]}>" for key, value in details.items())
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:sb="{SB}">'
        f"<soapenv:Body><sb:ProcessPayment>{children}<sb:PaymentDetails>{inner}</sb:PaymentDetails>"
        "</sb:ProcessPayment></soapenv:Body></soapenv:Envelope>"
    ).encode()
    return soap_post(gw, "ProcessPayment", body)


def test_soap_details_arrive_one_element_per_field(xml_gw: Sandbox, receiver: CallbackReceiver) -> None:
    fields = payment_fields(receiver)
    response = _soap_pay(xml_gw, fields, "bank_account", IBAN)
    assert soap_result(response, "ProcessPayment")["Status"] == "Accepted"
    record = _record(xml_gw, fields["reference"])
    assert record["payment_method"] == "bank_account"
    assert record["payment_details"] == {"iban": "3000", "holder_name": " Roe"}


def test_soap_invalid_details_are_declined(xml_gw: Sandbox, receiver: CallbackReceiver) -> None:
    response = _soap_pay(xml_gw, payment_fields(receiver), "card", {**CARD, "exp_month": "13"})
    result = soap_result(response, "ProcessPayment")
    assert (result["Status"], result["Reason"]) == ("Declined", "invalid_payment_details")


def test_the_wsdl_describes_the_method_and_its_details(xml_gw: Sandbox) -> None:
    wsdl = xml_gw.get("/soap?wsdl").text
    assert '<xsd:element name="PaymentMethod" minOccurs="0">' in wsdl
    assert '<xsd:complexType name="PaymentDetails">' in wsdl
    for name in ("Number", "ExpMonth", "ExpYear", "Cvc", "HolderName", "Iban", "AccountNumber", "BankCode"):
        assert f'<xsd:element name="{name}" type="xsd:string" minOccurs="0"/>' in wsdl


def test_a_security_code_is_never_shown_not_even_in_part() -> None:
    assert details_seen({"cvc": "1234", "number": "4242424242424242"}) == {"cvc": "***", "number": "4242"}


@pytest.mark.parametrize(
    ("method", "details", "valid"),
    [
        ("card", CARD, True),
        ("card", {**CARD, "number": "378282246310005"}, True),
        ("card", {**CARD, "number": "4242424242424243"}, False),
        ("card", {**CARD, "exp_year": "30"}, False),
        ("bank_account", IBAN, True),
        ("bank_account", {"iban": "GB82WEST12345698765432"}, True),
        ("bank_account", {"iban": "GB82WEST1234569876543"}, False),
        ("bank_account", {"account_number": "12345678", "bank_code": "123456"}, True),
        ("wallet", {"provider": "paypal", "account": "+4915112345678"}, True),
        ("redirect", {}, True),
        ("cash", {}, False),
    ],
)
def test_the_sandbox_checks_details_by_its_own_rules(method: str, details: dict[str, str], valid: bool) -> None:
    assert details_valid(method, details) is valid
