"""schemathesis hooks for `make apicheck` (loaded through apicheck/schemathesis.toml)."""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.transport.serialization import _sanitize_xml_name  # pinned version: requirements-dev.txt


def _keys_repaired(value: Any, *, xml: bool) -> Any:
    """`value` with every object's keys made acceptable, at any depth: NUL dropped from a key
    (PostgreSQL cannot store it), and in the XML form keys renamed where two would become one
    element name."""
    if isinstance(value, list):
        return [_keys_repaired(item, xml=xml) for item in value]
    if not isinstance(value, dict):
        return value
    repaired: dict[str, Any] = {}
    for key, item in value.items():
        base = key.replace("\x00", "")
        if xml:
            # The name the XML form will carry, so that the API reads back the same keys.
            base = _sanitize_xml_name(base)
        new_key, serial = base, 1
        while new_key in repaired:
            new_key, serial = f"{base}_{serial}", serial + 1
        repaired[new_key] = _keys_repaired(item, xml=xml)
    return repaired


# Below the API's 4096 bytes: the XML form reads every value back as text, which can lengthen it.
_METADATA_BYTES = 3000


def _metadata_fitted(metadata: dict[str, Any]) -> dict[str, Any]:
    fitted = dict(metadata)
    while fitted and len(json.dumps(fitted, default=str)) > _METADATA_BYTES:
        del fitted[max(fitted, key=lambda key: len(json.dumps({key: fitted[key]}, default=str)))]
    return fitted


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """Repairs, in every phase, what a schema cannot forbid. It repairs rather than refuses: a
    refused case counts against hypothesis' `filter_too_much` health check, which fails the run.

    - In the XML form an object's keys are element names. schemathesis makes any key one (`ä`
      and `ö` both become `_`), so two distinct keys can end up as one element written twice, a
      document the API refuses (400) as ambiguous, rightly. Such keys are renamed apart.
    - A key holding NUL is refused (400): PostgreSQL cannot store it. JSON Schema says so with
      `propertyNames`, which OpenAPI 3.0 lacks (the schema's descriptions say it instead), so
      the NUL is dropped from the key.
    - A drawn saved-method id names no saved method (a 400 naming it, as documented): it is left
      out, with the method it came with, and the details are drawn free-form instead.
    - Metadata is at most 4 KiB as JSON (the schema's description says so): a larger one drawn
      loses its largest entries until it fits, with room for what the XML form adds.
    - Payment details get what a pattern cannot say (below)."""
    if case.meta is not None and case.meta.generation.mode.is_negative:
        # A case drawn to break the schema is left as drawn: a repair could make it valid.
        return case
    body = case.body
    if isinstance(body, (dict, list)):
        media_type = (case.media_type or "").split(";")[0].strip().lower()
        body = _keys_repaired(body, xml=media_type.endswith(("/xml", "+xml")))
    if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
        body = {**body, "metadata": _metadata_fitted(body["metadata"])}
    if isinstance(body, dict) and "payment_method_id" in body:
        drawn = ("payment_method_id", "payment_method")
        body = {key: value for key, value in body.items() if key not in drawn}
    else:
        body = details_completed(body)
    if body != case.body:
        # Only a changed body is set: schemathesis checks a body a hook set against the schema again.
        case.body = body
    return case


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


def details_completed(body: Any) -> Any:
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
