"""The body of POST /deposits and /withdrawals, described for OpenAPI exactly as validation reads it.

Each field's rule is one definition used twice: by the serializer in `apis/transactions.py` that validates it
and by the schema below. What no single field can say is written out here: the decimals an
amount may have depend on its currency (JPY 0, EUR 2, BHD 3, ...) and the maximum is a setting,
so the schema lists the currencies by minor units, each with its amount pattern; and the XML
form (CONTRACT §1), which carries only text: the same fields under a root `<transaction>`, each
leaf's text stripped of surrounding XML white space (core/parsers.py), an element with children an
object, and no empty object (an empty element reads as empty text).

Limits that JSON Schema cannot state are in the descriptions: metadata's size (4 KiB as JSON)
and depth, and that no text anywhere may hold NUL (U+0000), which OpenAPI 3.0 cannot forbid in an
object's keys.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension

from core.currencies import ISO_4217, minor_units
from core.schema import (
    XML_TEXT_PATTERN,
    DescribedBody,
    one_of_pattern,
    padded_pattern,
    stripped_text_pattern,
    xml_text_pattern,
)

from .methods import (
    COLLECTABLE_METHODS,
    HOLDER_NAME_MAX_LENGTH,
    METHOD_FIELDS,
    SAVABLE_METHODS,
    WITHDRAWAL_METHODS,
    PaymentMethod,
)
from .money import MAX_DIGITS, amount_pattern

COUNTRY_PATTERN = "^[A-Z]{2}$"
CUSTOMER_ID_MAX_LENGTH = 100
DETAIL_MAX_LENGTH = 255
MAX_DETAIL_KEYS = 20
MAX_METADATA_BYTES = 4096
SAVED_METHOD_ID_MAX_LENGTH = 64

_CURRENCY_DESCRIPTION = "ISO 4217, upper case. The amount's decimals depend on it (JPY 0, EUR 2, BHD 3)."
_AMOUNT_DESCRIPTION = (
    'A plain decimal string such as "25.00" (no sign, exponent or leading zero), or a JSON number: '
    "above zero, at most {maximum}, with no more decimals that are not zero than the currency has."
)


def _currencies_by_places() -> dict[int, list[str]]:
    groups: dict[int, list[str]] = {}
    for code in sorted(ISO_4217):
        groups.setdefault(minor_units(code), []).append(code)
    return groups


def _amount_number(places: int, maximum: Decimal) -> dict[str, Any]:
    """A JSON number, read as the Decimal of its text (core/parsers.py): the same bounds."""
    schema: dict[str, Any] = {"type": "number", "minimum": 0, "exclusiveMinimum": True}
    if maximum >= 10**MAX_DIGITS:
        schema.update(maximum=10**MAX_DIGITS, exclusiveMaximum=True)
    else:
        schema["maximum"] = int(maximum) if maximum == maximum.to_integral_value() else float(maximum)
    schema["multipleOf"] = 1 if places == 0 else float(Decimal(1).scaleb(-places))
    return schema


def amount_schema(*, places: int, xml: bool = False) -> dict[str, Any]:
    maximum = Decimal(settings.PAYGATE_MAX_AMOUNT)
    pattern = amount_pattern(places=places, maximum=maximum)
    if xml:
        return {"type": "string", "pattern": xml_text_pattern(pattern)}
    return {"anyOf": [{"type": "string", "pattern": pattern}, _amount_number(places, maximum)]}


class _AmountFieldSchema(OpenApiSerializerFieldExtension):
    """apis.inputs.AmountField alone, where the currency is not in the same body: the most decimals any
    currency has. The transaction body states each currency's (`transaction_create_schema`)."""

    target_class = "payments.apis.inputs.AmountField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return {**amount_schema(places=max(map(minor_units, ISO_4217))), "example": "25.00"}


def _payment_details(*, xml: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "maxProperties": MAX_DETAIL_KEYS,
        "additionalProperties": {
            "type": "string",
            "pattern": stripped_text_pattern(min_length=0, max_length=DETAIL_MAX_LENGTH, xml=xml),
        },
        "description": "Sensitive: encrypted at rest, returned masked. Security codes, PINs and track data "
        "(cvv, cvc, pin, track2, ...) are never returned and are deleted once the transaction is final. "
        f"At most {MAX_DETAIL_KEYS} entries; each value at most {DETAIL_MAX_LENGTH} characters, "
        "surrounding white space removed. No key may hold NUL (U+0000): refused with a 400 (JSON Schema's "
        "propertyNames says it, which OpenAPI 3.0 does not have).",
    }
    if xml:
        schema["minProperties"] = 1
    return schema


def _metadata(*, xml: bool) -> dict[str, Any]:
    description = (
        f"A small free-form object: at most {MAX_METADATA_BYTES} bytes as JSON, nested at most "
        f"{settings.PAYGATE_MAX_JSON_DEPTH - 2} levels deep, no NUL (U+0000) in any key or text. Returned as given."
    )
    if xml:
        return {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": _xml_value(depth=3),
            "description": description + " In XML every value is text, or elements (an object).",
        }
    return {"type": "object", "additionalProperties": {}, "description": description}


def _xml_value(*, depth: int) -> dict[str, Any]:
    """An element at `depth` (the root is 1): text, or child elements while the parser's depth allows."""
    text = {"type": "string", "pattern": XML_TEXT_PATTERN}
    if depth >= settings.PAYGATE_MAX_JSON_DEPTH:
        return text
    return {
        "anyOf": [text, {"type": "object", "minProperties": 1, "additionalProperties": _xml_value(depth=depth + 1)}]
    }


RETURN_URL_MAX_LENGTH = 2000
# BCP 47 as far as the pay page needs it: a language and up to three subtags (at most 30 characters).
LOCALE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$"
LOCALE_MAX_LENGTH = 35
_PORT = "(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_HOST = r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])"
# Printable ASCII but the backslash: what a path, query and fragment may hold (percent-encode the rest).
_REST = r"(?:[/?#][\x21-\x5b\x5d-\x7e]*)?"


def return_url_pattern(*, https_only: bool) -> str:
    """An absolute http(s) URL without credentials, printable ASCII, no spaces or backslashes.

    One pattern for the schema and for validation (payments.returnurl): what one accepts the other does.
    """
    scheme = "[Hh][Tt][Tt][Pp][Ss]" if https_only else "[Hh][Tt][Tt][Pp][Ss]?"
    return f"^{scheme}://{_HOST}(?::{_PORT})?{_REST}$"


def _deposit_fields(*, xml: bool) -> dict[str, Any]:
    """What only a deposit carries (CONTRACT §11)."""
    return {
        "return_url": {
            "type": "string",
            "maxLength": RETURN_URL_MAX_LENGTH,
            "pattern": xml_text_pattern(return_url_pattern(https_only=not settings.DEBUG))
            if xml
            else return_url_pattern(https_only=not settings.DEBUG),
            "description": "An absolute http(s) URL (https only in production), at most "
            f"{RETURN_URL_MAX_LENGTH} characters: where the customer's browser goes when the payment is over, "
            "with `transaction_id` added to its query. With it the answer carries `next_action`.",
        },
        "locale": {
            "type": "string",
            **({} if xml else {"maxLength": LOCALE_MAX_LENGTH}),
            "pattern": xml_text_pattern(LOCALE_PATTERN) if xml else LOCALE_PATTERN,
            "description": "The pay page's language as a BCP 47 tag (e.g. de-DE); else the browser's, else English.",
        },
    }


_METHOD_CHECKS: dict[str, str] = {
    PaymentMethod.CARD: " The number's Luhn digit is checked, and the expiry may not be in the past.",
    PaymentMethod.BANK_ACCOUNT: " An IBAN's length for its country and its mod-97 check digits are checked.",
    PaymentMethod.WALLET: "",
}


def method_details_schema(method: str, *, xml: bool) -> dict[str, Any]:
    """The details of one method (payments.methods.METHOD_FIELDS): each field's text, white space around it removed."""
    fields = METHOD_FIELDS[method]
    properties: dict[str, Any] = {}
    for name, field in fields.items():
        if field.pattern:
            pattern = padded_pattern(field.pattern, xml=xml)
        else:
            pattern = stripped_text_pattern(min_length=1, max_length=HOLDER_NAME_MAX_LENGTH, xml=xml)
        properties[name] = {"type": "string", "pattern": pattern, "description": field.description}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": [name for name, field in fields.items() if field.required],
        "additionalProperties": False,
        "description": f"The details of a {method}, checked field by field (a 400 names the field)."
        + _METHOD_CHECKS.get(method, ""),
    }
    if method == PaymentMethod.BANK_ACCOUNT:
        bank_fields = [{"required": ["account_number"]}, {"required": ["bank_code"]}]
        schema["oneOf"] = [
            {"required": ["iban"], "not": {"anyOf": bank_fields}},
            {"required": ["account_number", "bank_code"], "not": {"required": ["iban"]}},
        ]
    return schema


def _method_text(methods: list[str], *, xml: bool) -> dict[str, Any]:
    # A pattern, not an enum: drf-spectacular merges enums of one field name into one component.
    pattern = one_of_pattern(methods)
    return {"type": "string", "pattern": xml_text_pattern(pattern) if xml else pattern}


def _method_branches(*, xml: bool, withdrawal: bool, deposit: bool = False) -> list[dict[str, Any]]:
    """One body per payment method (CONTRACT §12), told apart by `payment_method`; one with a saved
    method (`payment_method_id`); one without either, whose details are free-form; and for a deposit,
    one whose details the customer types on the pay page (a collectable method, `return_url`, no details)."""
    saves = {"save_payment_method": _boolean(xml=xml, only=True)} if not withdrawal else {}
    no_save = {"properties": {"save_payment_method": _boolean(xml=xml, only=False)}} if not withdrawal else {}
    branches: list[dict[str, Any]] = [
        {"not": {"anyOf": [{"required": ["payment_method"]}, {"required": ["payment_method_id"]}]}, **no_save},
        {
            "required": ["payment_method_id"],
            "properties": {
                "payment_method": _method_text(sorted(m.value for m in SAVABLE_METHODS), xml=xml),
                **({"save_payment_method": _boolean(xml=xml, only=False)} if not withdrawal else {}),
            },
            "not": {"required": ["payment_details"]},
        },
    ]
    for method in PaymentMethod:
        if withdrawal and method not in WITHDRAWAL_METHODS:
            continue
        if METHOD_FIELDS[method]:
            branches.append(
                {
                    "required": ["payment_method", "payment_details"],
                    "properties": {
                        "payment_method": _method_text([method], xml=xml),
                        "payment_details": method_details_schema(method, xml=xml),
                        **saves,
                    },
                    "not": {"required": ["payment_method_id"]},
                }
            )
        else:
            branches.append(
                {
                    "required": ["payment_method"],
                    "properties": {"payment_method": _method_text([method], xml=xml), **no_save.get("properties", {})},
                    "not": {"anyOf": [{"required": ["payment_details"]}, {"required": ["payment_method_id"]}]},
                }
            )
    if deposit:
        branches.append(
            {
                "required": ["payment_method", "return_url"],
                "properties": {
                    "payment_method": _method_text(sorted(m.value for m in COLLECTABLE_METHODS), xml=xml),
                    **saves,
                },
                "not": {"anyOf": [{"required": ["payment_details"]}, {"required": ["payment_method_id"]}]},
                "description": "Collected by Paygate: the customer types the details on the pay page "
                "(next_action); save_payment_method true offers the customer a tick to save them.",
            }
        )
    return branches


def _boolean(*, xml: bool, only: bool | None = None) -> dict[str, Any]:
    """true or false (`only` True: either; False: false alone); in XML, their text."""
    values = ["false"] if only is False else ["false", "true"]
    if xml:
        return {"type": "string", "pattern": xml_text_pattern(one_of_pattern(values))}
    return {"type": "boolean"} if len(values) == 2 else {"type": "boolean", "enum": [False]}


def transaction_create_schema(*, xml: bool, deposit: bool = False, withdrawal: bool = False) -> dict[str, Any]:
    maximum = Decimal(settings.PAYGATE_MAX_AMOUNT)
    groups = _currencies_by_places()

    def text(pattern: str) -> dict[str, Any]:
        return {"type": "string", "pattern": xml_text_pattern(pattern) if xml else pattern}

    def currency_in(codes: list[str]) -> dict[str, Any]:
        # A pattern, not an enum: drf-spectacular merges enums of one field name into one component.
        return text(one_of_pattern(codes))

    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "customer_id": {
                "type": "string",
                "pattern": stripped_text_pattern(min_length=1, max_length=CUSTOMER_ID_MAX_LENGTH, xml=xml),
                "description": f"1 to {CUSTOMER_ID_MAX_LENGTH} characters, surrounding white space removed.",
            },
            "country": {**text(COUNTRY_PATTERN), "description": "ISO 3166-1 alpha-2, upper case."},
            "amount": {
                **({"type": "string"} if xml else {"anyOf": [{"type": "string"}, {"type": "number"}]}),
                "description": _AMOUNT_DESCRIPTION.format(maximum=maximum),
                "example": "25.00",
            },
            "currency": {
                **(currency_in(sorted(ISO_4217)) if xml else {"type": "string", "enum": sorted(ISO_4217)}),
                "description": _CURRENCY_DESCRIPTION,
            },
            "payment_method": {
                **_method_text(
                    sorted(m.value for m in PaymentMethod if not withdrawal or m in WITHDRAWAL_METHODS), xml=xml
                ),
                "description": "What the customer pays with"
                + (" or is paid to" if withdrawal else "")
                + (". A withdrawal needs a destination" if withdrawal else "; redirect: everything at the gateway")
                + ". payment_details then follow the method's rules; without it they are free-form.",
            },
            "payment_details": _payment_details(xml=xml),
            "payment_method_id": {
                "type": "string",
                "pattern": stripped_text_pattern(min_length=1, max_length=SAVED_METHOD_ID_MAX_LENGTH, xml=xml),
                "description": "A saved method of this customer (pm_…) instead of payment_details; another "
                "client's or customer's, a deleted or an unknown id is a 400 naming payment_method_id.",
            },
            **(
                {}
                if withdrawal
                else {
                    "save_payment_method": {
                        **_boolean(xml=xml),
                        "description": "Keep the details, without a security code, as a saved method (pm_…) "
                        "of this customer once the deposit completes. Needs payment_method card, "
                        "bank_account or wallet with its details; on a deposit whose details the customer "
                        "types on the pay page, it offers the customer a tick instead.",
                    }
                }
            ),
            "metadata": _metadata(xml=xml),
            **(_deposit_fields(xml=xml) if deposit else {}),
        },
        "required": ["customer_id", "country", "amount", "currency"],
        "additionalProperties": False,
        # The amount's decimals by the currency's minor units.
        "anyOf": [
            {"properties": {"currency": currency_in(codes), "amount": amount_schema(places=places, xml=xml)}}
            for places, codes in sorted(groups.items())
        ],
        "oneOf": _method_branches(xml=xml, withdrawal=withdrawal, deposit=deposit),
    }
    if xml:
        schema["xml"] = {"name": "transaction"}
        schema["description"] = (
            "The JSON form's fields as child elements of <transaction>; every value is text, stripped of "
            "surrounding XML white space (space, tab, CR, LF)."
        )
    return schema


class DepositCreate(DescribedBody):
    @classmethod
    def openapi_schema(cls) -> dict[str, Any]:
        return transaction_create_schema(xml=False, deposit=True)


class DepositCreateXml(DescribedBody):
    @classmethod
    def openapi_schema(cls) -> dict[str, Any]:
        return transaction_create_schema(xml=True, deposit=True)


class WithdrawalCreate(DescribedBody):
    @classmethod
    def openapi_schema(cls) -> dict[str, Any]:
        return transaction_create_schema(xml=False, withdrawal=True)


class WithdrawalCreateXml(DescribedBody):
    @classmethod
    def openapi_schema(cls) -> dict[str, Any]:
        return transaction_create_schema(xml=True, withdrawal=True)


def refund_create_schema(*, xml: bool) -> dict[str, Any]:
    """The refund body: the deposit's currency is not in it, so the amount allows the most decimals
    any currency has (the deposit's own currency then decides: more decimals than it has is a 400)."""
    places = max(map(minor_units, ISO_4217))
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "amount": {
                **amount_schema(places=places, xml=xml),
                "description": "What to refund; without it, all that remains refundable.",
            },
            "reason": {"type": "string", "maxLength": 255, "description": "The merchant's reason, kept as given."},
        },
        "additionalProperties": False,
    }
    if xml:
        schema["properties"]["reason"] = {
            "type": "string",
            "pattern": xml_text_pattern("^[^\\x00]{0,255}$"),
            "description": "The merchant's reason.",
        }
        schema["xml"] = {"name": "refund"}
        schema["description"] = "The JSON form's fields as child elements of <refund>; every value is text."
    return schema


class RefundCreate(DescribedBody):
    @classmethod
    def openapi_schema(cls) -> dict[str, Any]:
        return refund_create_schema(xml=False)


class RefundCreateXml(DescribedBody):
    @classmethod
    def openapi_schema(cls) -> dict[str, Any]:
        return refund_create_schema(xml=True)
