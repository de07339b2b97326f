"""schemathesis hooks for `make apicheck` (loaded through apicheck/schemathesis.toml)."""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.transport.serialization import _sanitize_xml_name  # pinned version: requirements-dev.txt


def _xml_names_collide(value: Any) -> bool:
    if isinstance(value, list):
        return any(_xml_names_collide(item) for item in value)
    if not isinstance(value, dict):
        return False
    names = [_sanitize_xml_name(key) for key in value]
    return len(set(names)) < len(names) or any(_xml_names_collide(item) for item in value.values())


def _nul_in_a_key(value: Any) -> bool:
    if isinstance(value, list):
        return any(_nul_in_a_key(item) for item in value)
    if not isinstance(value, dict):
        return False
    return any("\x00" in key or _nul_in_a_key(item) for key, item in value.items())


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    """In the XML form an object's keys are element names. schemathesis makes any key one (`ä`
    and `ö` both become `_`), so two distinct keys can end up as one element written twice, a
    document the API refuses (400) as ambiguous, rightly. Such cases are not drawn.

    A key holding NUL is refused (400): PostgreSQL cannot store it. JSON Schema says so with
    `propertyNames`, which OpenAPI 3.0 lacks (the schema's descriptions say it instead), so
    such cases are not drawn either."""
    if _nul_in_a_key(case.body):
        return False
    # The coverage phase does not pass its bodies through `map_body`: complete the details here
    # too, and leave out a drawn saved-method id (it names none: a 400 naming it, as documented).
    if isinstance(case.body, dict):
        if "payment_method_id" in case.body:
            return False
        case.body = _details_completed(case.body)
    media_type = (case.media_type or "").split(";")[0].strip().lower()
    if media_type.endswith("/xml") or media_type.endswith("+xml"):
        return not _xml_names_collide(case.body)
    return True


# What a pattern cannot say about payment details (CONTRACT §12; the schema's descriptions say it):
# a card number's Luhn digit, an expiry not in the past, an IBAN's country length and mod-97.
# A body drawn from the schema gets them right, so that a 400 for them is not taken for the API
# refusing what its schema allows.
_VALID_IBAN = "DE89370400440532013000"


def _luhn_completed(digits: str) -> str:
    body = digits[:-1]
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


def _replace_stripped(value: str, new: str) -> str:
    stripped = value.strip()
    return value.replace(stripped, new, 1) if stripped else value


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    if isinstance(body, dict) and "payment_method_id" in body:
        # A drawn id names no saved method (a 400 naming it, as documented): draw free-form details instead.
        return {key: value for key, value in body.items() if key not in ("payment_method_id", "payment_method")}
    return _details_completed(body)


def _details_completed(body: Any) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get("payment_details"), dict):
        return body
    method = str(body.get("payment_method", "")).strip()
    details = dict(body["payment_details"])
    if method == "card":
        number = details.get("number")
        if isinstance(number, str) and number.strip().isascii() and number.strip().isdigit():
            details["number"] = _replace_stripped(number, _luhn_completed(number.strip()))
        year = details.get("exp_year")
        if isinstance(year, str) and year.strip().isascii() and year.strip().isdigit() and len(year.strip()) == 4:
            details["exp_year"] = _replace_stripped(year, "2099")
    elif method == "bank_account" and isinstance(details.get("iban"), str) and details["iban"].strip():
        details["iban"] = _replace_stripped(details["iban"], _VALID_IBAN)
    return {**body, "payment_details": details}
