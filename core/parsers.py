"""Request parsers: strict JSON (decimals stay decimals) and XML through defusedxml only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element
from xml.etree.ElementTree import ParseError as XMLSyntaxError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import BaseParser

from .text import UNSTORABLE_MESSAGE, escape_unstorable, first_unstorable


def reject_constant(name: str) -> Any:
    """`parse_constant` for json.loads: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not a valid JSON value")


class DuplicateKey(ValueError):
    pass


# Longest number token read: a money amount has at most 37 characters (see payments/money.py).
MAX_NUMBER_CHARS = 64
# Largest exponent read: `1e1000000000` is 12 bytes that format(Decimal, "f") turns into a
# gigabyte of digits, and an exponent past Decimal's limits is an arithmetic error. Every
# double a JSON encoder writes (5e-324 to 1.8e308) stays readable for free-form metadata.
MAX_NUMBER_EXPONENT = 400


class NumberRefused(ValueError):
    pass


class ExponentDecimal(Decimal):
    """A JSON number written with an exponent (`1.5e3`): free-form metadata may hold one (any JSON
    encoder writes very small or large numbers so), an amount never (payments/money.py)."""

    __slots__ = ()


def parse_decimal(token: str) -> Decimal:
    """`parse_float` for json.loads: a Decimal, never a float; a long token or a large exponent refused."""
    if len(token) > MAX_NUMBER_CHARS:
        raise NumberRefused(f"A JSON number has more than {MAX_NUMBER_CHARS} characters; send a string.")
    mantissa, e, exponent = token.lower().partition("e")
    if not e:
        return Decimal(token)
    if abs(int(exponent)) > MAX_NUMBER_EXPONENT:
        raise NumberRefused(f"A JSON number's exponent is beyond ±{MAX_NUMBER_EXPONENT}; write it in plain digits.")
    return ExponentDecimal(token)


def parse_integer(token: str) -> int:
    """`parse_int` for json.loads: bounded, so that no long digit string is converted."""
    if len(token) > MAX_NUMBER_CHARS:
        raise NumberRefused(f"A JSON number has more than {MAX_NUMBER_CHARS} characters; send a string.")
    return int(token)


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for json.loads: two values for one key would let two parsers disagree."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(f"Duplicate key {escape_unstorable(key)!r} in a JSON object.")
        result[key] = value
    return result


def refuse_unstorable(data: Any) -> None:
    """A 400 naming the field, rather than a database error, for text PostgreSQL cannot store."""
    path = first_unstorable(data)
    if path is not None:
        field = path.split(".", 1)[0].split("[", 1)[0]
        raise ValidationError({field or "non_field_errors": [f"{path}: {UNSTORABLE_MESSAGE}"]})


def _depth(value: Any, limit: int, level: int = 1) -> None:
    if level > limit:
        raise ParseError(f"JSON nested deeper than {limit} levels.")
    if isinstance(value, dict):
        for item in value.values():
            _depth(item, limit, level + 1)
    elif isinstance(value, list):
        for item in value:
            _depth(item, limit, level + 1)


def _read(stream: Any) -> bytes:
    limit = settings.PAYGATE_MAX_BODY_BYTES
    data = stream.read(limit + 1) if stream is not None else b""
    if len(data) > limit:
        from core.errors import PayloadTooLarge  # core.errors imports DRF's views, which import this

        raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
    return data


def loads_strict_json(data: bytes) -> Any:
    """JSON with floats as Decimal, NaN/Infinity and duplicate keys refused, depth bounded."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            parse_float=parse_decimal,
            parse_int=parse_integer,
            parse_constant=reject_constant,
            object_pairs_hook=unique_keys,
        )
    except (DuplicateKey, NumberRefused) as exc:
        raise ParseError(str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"Malformed JSON: {exc}") from None
    except RecursionError:
        raise ParseError("JSON nested too deeply.") from None
    except ArithmeticError:
        raise ParseError("Malformed JSON: a number out of range.") from None
    _depth(value, settings.PAYGATE_MAX_JSON_DEPTH)
    return value


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        data = loads_strict_json(_read(stream))
        refuse_unstorable(data)
        return data


# XML's own white space (the S production): stripped around a leaf's text, which may be indented.
XML_WHITE_SPACE = " \t\n\r"


def element_to_data(element: Element, *, depth: int = 1) -> Any:
    """`<a><b>1</b><c><d>2</d></c></a>` → `{"b": "1", "c": {"d": "2"}}`; a leaf is its text, stripped."""
    if depth > settings.PAYGATE_MAX_JSON_DEPTH:
        raise ParseError("XML nested too deeply.")
    children = list(element)
    if not children:
        return (element.text or "").strip(XML_WHITE_SPACE)
    data: dict[str, Any] = {}
    for child in children:
        tag = child.tag.rsplit("}", 1)[-1]
        if tag in data:
            raise ParseError(f"XML element <{tag}> appears more than once.")
        data[tag] = element_to_data(child, depth=depth + 1)
    return data


def loads_xml(data: bytes) -> Element:
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise ParseError("XML with a DTD or entities is not accepted.") from None
    except (XMLSyntaxError, ValueError) as exc:
        raise ParseError(f"Malformed XML: {exc}") from None


class XMLParser(BaseParser):
    media_type = "application/xml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        root = loads_xml(_read(stream))
        data = element_to_data(root)
        if data == "":
            # `<refund/>`: the empty object, as `{}` in JSON (a body whose fields are all optional).
            data = {}
        if not isinstance(data, dict):
            raise ParseError("XML body must be an element with child elements, or an empty one.")
        refuse_unstorable(data)  # XML 1.0 has no NUL, but one check for every body costs little
        return data


class TextXMLParser(XMLParser):
    media_type = "text/xml"
