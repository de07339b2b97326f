"""The body of POST /deposits and /withdrawals, described for OpenAPI exactly as validation reads it.

Each field's rule is one definition used twice: by the serializer in `apis.py` that validates it
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
from core.schema import XML_TEXT_PATTERN, DescribedBody, one_of_pattern, stripped_text_pattern, xml_text_pattern

from .money import MAX_DIGITS, amount_pattern

COUNTRY_PATTERN = "^[A-Z]{2}$"
CUSTOMER_ID_MAX_LENGTH = 100
DETAIL_MAX_LENGTH = 255
MAX_DETAIL_KEYS = 20
MAX_METADATA_BYTES = 4096

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
    """apis.AmountField alone, where the currency is not in the same body: the most decimals any
    currency has. The transaction body states each currency's (`transaction_create_schema`)."""

    target_class = "payments.apis.AmountField"

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


def transaction_create_schema(*, xml: bool) -> dict[str, Any]:
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
            "payment_details": _payment_details(xml=xml),
            "metadata": _metadata(xml=xml),
        },
        "required": ["customer_id", "country", "amount", "currency"],
        "additionalProperties": False,
        # The amount's decimals by the currency's minor units.
        "anyOf": [
            {"properties": {"currency": currency_in(codes), "amount": amount_schema(places=places, xml=xml)}}
            for places, codes in sorted(groups.items())
        ],
    }
    if xml:
        schema["xml"] = {"name": "transaction"}
        schema["description"] = (
            "The JSON form's fields as child elements of <transaction>; every value is text, stripped of "
            "surrounding XML white space (space, tab, CR, LF)."
        )
    return schema


class TransactionCreate(DescribedBody):
    @classmethod
    def openapi_schema(cls) -> dict[str, Any]:
        return transaction_create_schema(xml=False)


class TransactionCreateXml(DescribedBody):
    @classmethod
    def openapi_schema(cls) -> dict[str, Any]:
        return transaction_create_schema(xml=True)


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
