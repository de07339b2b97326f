"""Payment methods (CONTRACT §12): validation per method, errors naming the field, masking, the CVC's end."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from payments.methods import (
    IBAN_LENGTHS,
    PaymentMethod,
    iban_valid,
    luhn_valid,
    mask_method_details,
    method_details_errors,
)
from payments.models import Transaction
from payments.services import transaction_lock, transaction_transition
from testing.factories import BANK, CARD, IBAN, deposit_body

PROPERTY = settings(max_examples=200, derandomize=True, deadline=None)
TODAY = date(2026, 6, 15)

# Published test numbers: Stripe, Adyen, Braintree documentation.
TEST_CARDS = [
    "4242424242424242",  # Visa
    "4000056655665556",  # Visa debit
    "4111111111111111",
    "5555555555554444",  # Mastercard
    "2223003122003222",  # Mastercard 2-series
    "378282246310005",  # American Express (15)
    "6011111111111117",  # Discover
    "30569309025904",  # Diners Club (14)
    "3566002020360505",  # JCB
    "6200000000000005",  # UnionPay
    "4000000000000000006",  # 19 digits
]
# IBAN examples of the SWIFT registry and national banks.
TEST_IBANS = [
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "BE68539007547034",
    "NO9386011117947",
    "CH9300762011623852957",
    "AT611904300234573201",
    "PL61109010140000071219812874",
    "MT84MALT011000012345MTLCAST001S",
    "BR1800360305000010009795493C1",
]
WALLET = {"provider": "paypal", "account": "jane@example.com"}
DEPOSIT = deposit_body(payment_details=None, metadata=None)


@pytest.mark.parametrize("number", TEST_CARDS)
def test_published_test_cards_pass_luhn_and_any_changed_digit_fails(number: str) -> None:
    assert luhn_valid(number)
    assert not method_details_errors("card", {**CARD, "number": number}, today=TODAY)
    for position in range(len(number)):
        changed = number[:position] + str((int(number[position]) + 1) % 10) + number[position + 1 :]
        assert not luhn_valid(changed), changed


@pytest.mark.parametrize("iban", TEST_IBANS)
def test_published_ibans_pass_and_a_changed_character_or_length_fails(iban: str) -> None:
    assert iban_valid(iban)
    assert not method_details_errors("bank_account", {**BANK, "iban": iban}, today=TODAY)
    assert not iban_valid(iban[:-1])
    assert not iban_valid(iban + "0")
    swapped = iban[:4] + iban[5] + iban[4] + iban[6:]
    assert swapped == iban or not iban_valid(swapped)
    digit = next(i for i in range(4, len(iban)) if iban[i].isdigit())
    assert not iban_valid(iban[:digit] + str((int(iban[digit]) + 1) % 10) + iban[digit + 1 :])


def _reference_luhn(number: str) -> bool:
    digits = [int(d) for d in number]
    odd = digits[-1::-2]
    even = [sum(divmod(2 * d, 10)) for d in digits[-2::-2]]
    return (sum(odd) + sum(even)) % 10 == 0


def _reference_iban(iban: str) -> bool:
    if len(iban) != IBAN_LENGTHS.get(iban[:2], -1) or not iban[2:4].isdigit():
        return False
    if not all(ch.isascii() and ch.isalnum() and not ch.islower() for ch in iban):
        return False
    return int("".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])) % 97 == 1


@PROPERTY
@given(number=st.text("0123456789", min_size=1, max_size=19))
def test_luhn_agrees_with_a_second_implementation(number: str) -> None:
    assert luhn_valid(number) == _reference_luhn(number)


@PROPERTY
@given(
    country=st.sampled_from(sorted(IBAN_LENGTHS)),
    check=st.integers(0, 99),
    body=st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=11, max_size=30),
)
def test_iban_agrees_with_a_second_implementation(country: str, check: int, body: str) -> None:
    iban = f"{country}{check:02d}{body}"
    assert iban_valid(iban) == _reference_iban(iban)


HOSTILE = st.text(st.characters(), max_size=40)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(method=st.sampled_from(["card", "bank_account", "wallet"]), key=st.sampled_from(["x"]), value=HOSTILE)
@example(method="card", key="x", value="\x00")
@example(method="card", key="x", value="\u0664\u0662")  # Arabic-Indic digits are not ASCII digits
def test_any_text_in_any_field_is_an_error_or_valid_never_a_crash(method: str, key: str, value: str) -> None:
    base = {"card": CARD, "bank_account": BANK, "wallet": WALLET}[method]
    for field in base:
        errors = method_details_errors(method, {**base, field: value}, today=TODAY)
        assert set(errors) <= set(base) | {"iban", "account_number", "bank_code"}
        if field != "holder_name" and not value.isascii():
            assert field in errors
        masked = json.dumps(mask_method_details(method, {**base, field: value}))
        assert "cvc" not in masked


@pytest.mark.parametrize(
    ("details", "field"),
    [
        ({**CARD, "number": "4242424242424241"}, "number"),
        ({**CARD, "number": "42424242424"}, "number"),  # 11 digits
        ({**CARD, "number": "4242 4242 4242 4242"}, "number"),
        ({**CARD, "exp_month": "13"}, "exp_month"),
        ({**CARD, "exp_month": "0"}, "exp_month"),
        ({**CARD, "exp_year": "30"}, "exp_year"),
        ({**CARD, "exp_year": "2026", "exp_month": "5"}, "exp_year"),  # last month
        ({**CARD, "cvc": "12"}, "cvc"),
        ({**CARD, "cvc": "12345"}, "cvc"),
        ({k: v for k, v in CARD.items() if k != "holder_name"}, "holder_name"),
        ({**CARD, "pin": "1234"}, "pin"),
        ({**BANK, "iban": "DE89370400440532013001"}, "iban"),
        ({**BANK, "iban": "DE8937040044053201300"}, "iban"),  # a German IBAN is 22 long
        ({**BANK, "iban": "de89370400440532013000"}, "iban"),
        ({**BANK, "iban": "XX89370400440532013000"}, "iban"),
        ({"holder_name": "Jane Roe"}, "iban"),
        ({"account_number": "12345678", "holder_name": "Jane Roe"}, "bank_code"),
        ({**BANK, "bic": "deutdeff"}, "bic"),
        ({**BANK, "account_number": "12345678", "bank_code": "021000021"}, "iban"),
        ({**WALLET, "account": "not-an-address"}, "account"),
        ({**WALLET, "account": "+0123"}, "account"),
        ({"account": "jane@example.com"}, "provider"),
    ],
)
def test_each_rule_names_its_field(details: dict[str, str], field: str) -> None:
    method = (
        "card"
        if "number" in details or "exp_month" in details
        else "wallet"
        if "provider" in details or "account" in details
        else "bank_account"
    )
    assert field in method_details_errors(method, details, today=TODAY)


def test_this_month_is_not_expired() -> None:
    assert not method_details_errors("card", {**CARD, "exp_year": "2026", "exp_month": "6"}, today=TODAY)
    assert not method_details_errors("card", {**CARD, "exp_year": "2026", "exp_month": "06"}, today=TODAY)


@pytest.mark.parametrize(
    "details",
    [
        {"account_number": "12345678", "bank_code": "12-34-56", "holder_name": "Jane Roe"},
        {**BANK, "bic": "DEUTDEFF500"},
        {**WALLET, "account": "+4915112345678"},
    ],
)
def test_other_valid_forms_pass(details: dict[str, str]) -> None:
    method = "wallet" if "provider" in details else "bank_account"
    assert method_details_errors(method, details, today=TODAY) == {}


def test_masking_shows_at_most_what_each_field_allows() -> None:
    assert mask_method_details("card", CARD) == {
        "number": "424242******4242",
        "exp_month": "12",
        "exp_year": "2030",
        "holder_name": "J*** R**",
    }
    assert mask_method_details("card", {**CARD, "number": "378282246310005"})["number"] == "********0005"
    assert mask_method_details("bank_account", {**BANK, "bic": "DEUTDEFF"}) == {
        "iban": "DE************3000",
        "holder_name": "J*** R**",
        "bic": "DEUTDEFF",
    }
    assert mask_method_details("wallet", WALLET) == {"provider": "paypal", "account": "j***@example.com"}
    assert mask_method_details("wallet", {**WALLET, "account": "+4915112345678"})["account"] == "********5678"


# --- Through the API ------------------------------------------------------------------------------


def post(api: Any, body: dict[str, Any], path: str = "/api/v1/deposits") -> Any:
    return api.post(path, data=json.dumps(body), content_type="application/json")


def test_a_card_deposit_is_accepted_and_shown_masked(demo: None, api: Any) -> None:
    response = post(api, {**DEPOSIT, "payment_method": "card", "payment_details": CARD})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["payment_method"] == "card"
    assert body["payment_details"] == {
        "number": "424242******4242",
        "exp_month": "12",
        "exp_year": "2030",
        "holder_name": "J*** R**",
    }
    assert "123" not in json.dumps(api.get(f"/api/v1/transactions/{body['id']}").json()["payment_details"])
    assert Transaction.objects.get(pk=body["id"]).payment_details == CARD


def test_an_invalid_field_is_a_400_naming_it_under_payment_details(demo: None, api: Any) -> None:
    response = post(
        api, {**DEPOSIT, "payment_method": "card", "payment_details": {**CARD, "number": "4242424242424241"}}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == ["payment_details"] and list(error["fields"]["payment_details"]) == ["number"]
    assert "4242424242424241" not in response.content.decode()


def test_an_unknown_method_is_a_400_naming_it(demo: None, api: Any) -> None:
    response = post(api, {**DEPOSIT, "payment_method": "cash", "payment_details": CARD})
    assert response.status_code == 400 and "payment_method" in response.json()["error"]["fields"]


def test_redirect_takes_no_details(demo: None, api: Any) -> None:
    assert post(api, {**DEPOSIT, "payment_method": "redirect"}).status_code == 202
    refused = post(api, {**DEPOSIT, "payment_method": "redirect", "payment_details": {}})
    assert refused.status_code == 400 and "payment_details" in refused.json()["error"]["fields"]


def test_a_method_without_its_details_is_a_400(demo: None, api: Any) -> None:
    response = post(api, {**DEPOSIT, "payment_method": "bank_account"})
    assert response.status_code == 400 and "payment_details" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"payment_method": "bank_account", "payment_details": BANK}, 202),
        ({"payment_method": "wallet", "payment_details": WALLET}, 202),
        ({"payment_method": "card", "payment_details": {k: v for k, v in CARD.items() if k != "cvc"}}, 202),
        ({"payment_method": "redirect"}, 400),
        ({"payment_details": {"anything": "goes"}}, 202),  # no method: free-form, as before
    ],
    ids=["bank", "wallet", "card", "redirect", "free-form"],
)
def test_a_withdrawal_needs_a_destination(demo: None, api: Any, change: dict[str, Any], status: int) -> None:
    response = post(api, {**DEPOSIT, **change}, path="/api/v1/withdrawals")
    assert response.status_code == status, response.content
    if status == 400:
        assert "payment_method" in response.json()["error"]["fields"]


def test_free_form_details_are_unchanged(demo: None, api: Any) -> None:
    body = post(api, {**DEPOSIT, "payment_details": {"iban": IBAN, "holder_name": "Jane Roe"}})
    assert body.status_code == 202
    assert body.json()["payment_method"] is None
    assert body.json()["payment_details"] == {"iban": "DE89************3000", "holder_name": "J*** R**"}


def test_a_card_in_xml_is_validated_by_the_same_rules(demo: None, api: Any) -> None:
    def xml(number: str) -> str:
        return (
            "<transaction><customer_id>c</customer_id><country>DE</country><amount>25.00</amount>"
            "<currency>EUR</currency><payment_method>card</payment_method><payment_details>"
            f"<number> {number} </number><exp_month>12</exp_month><exp_year>2030</exp_year><cvc>123</cvc>"
            "<holder_name>Jane Roe</holder_name></payment_details></transaction>"
        )

    accepted = api.post("/api/v1/deposits", data=xml("4242424242424242"), content_type="application/xml")
    assert accepted.status_code == 202, accepted.content
    refused = api.post("/api/v1/deposits", data=xml("4242424242424243"), content_type="application/xml")
    assert refused.status_code == 400
    assert b"number" in refused.content


def test_the_idempotency_fingerprint_tells_methods_apart(demo: None, api: Any) -> None:
    body = dict(DEPOSIT)
    first = api.post(
        "/api/v1/deposits", data=json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert first.status_code == 202
    other = api.post(
        "/api/v1/deposits",
        data=json.dumps({**body, "payment_method": "redirect"}),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert other.status_code == 409


@pytest.mark.parametrize("final", ["completed", "failed"])
def test_the_cvc_is_dropped_when_the_transaction_becomes_final(demo: None, api: Any, final: str) -> None:
    from django.db import transaction

    body = post(api, {**DEPOSIT, "payment_method": "card", "payment_details": CARD}).json()
    assert Transaction.objects.get(pk=body["id"]).payment_details["cvc"] == "123"
    with transaction.atomic():
        locked = transaction_lock(body["id"])
        transaction_transition(locked, to=final, failure_reason="gateway_failed" if final == "failed" else None)
    stored = Transaction.objects.get(pk=body["id"]).payment_details
    assert stored == {k: v for k, v in CARD.items() if k != "cvc"}


def test_every_method_has_a_rule_set() -> None:
    assert {m.value for m in PaymentMethod} == {"card", "bank_account", "wallet", "redirect"}


# --- Known answers: the sandbox's own checks agree with Paygate's -----------------------------------


@pytest.mark.parametrize("number", TEST_CARDS)
def test_the_sandbox_and_paygate_agree_on_published_cards(number: str) -> None:
    from sandbox.methods import details_valid

    card = {**CARD, "number": number}
    assert details_valid("card", card) and not method_details_errors("card", card, today=TODAY)
    broken = {**card, "number": number[:-1] + str((int(number[-1]) + 1) % 10)}
    assert not details_valid("card", broken) and method_details_errors("card", broken, today=TODAY)


@pytest.mark.parametrize("iban", TEST_IBANS)
def test_the_sandbox_and_paygate_agree_on_published_ibans(iban: str) -> None:
    from sandbox.methods import details_valid

    assert details_valid("bank_account", {**BANK, "iban": iban}) and iban_valid(iban)
    broken = iban[:-1] + ("0" if iban[-1] != "0" else "1")
    assert not details_valid("bank_account", {**BANK, "iban": broken}) and not iban_valid(broken)


@pytest.mark.parametrize(
    "raw_name",
    ['"Jane\\u0000Roe"', '"Jane\\ud800Roe"', '"\\u202eeoR enaJ"', '"Jane \\u3000"'],
    ids=["nul", "lone-surrogate", "bidi-override", "ideographic-space"],
)
def test_hostile_text_in_a_typed_field_is_refused_or_kept_never_a_500(demo: None, api: Any, raw_name: str) -> None:
    details = json.dumps({k: v for k, v in CARD.items() if k != "holder_name"})[:-1] + f', "holder_name": {raw_name}}}'
    body = json.dumps({**DEPOSIT, "payment_method": "card"})[:-1] + f', "payment_details": {details}}}'
    response = api.post("/api/v1/deposits", data=body, content_type="application/json")
    assert response.status_code in (202, 400), response.content
    if "\\u0000" in raw_name or "\\ud800" in raw_name:
        assert response.status_code == 400 and "payment_details" in response.json()["error"]["fields"]
    else:
        assert response.status_code == 202
