"""Payment methods (CONTRACT §12): what each method's details hold, how they are checked and masked.

A deposit or withdrawal may name `payment_method`; its `payment_details` then follow that
method's rules, checked here field by field so that each error names the field. Without a
method the details stay free-form (CONTRACT §1) and none of this applies.

The rules are data (`METHOD_FIELDS`) read by both the validation and the OpenAPI schema
(payments/schema.py), so the two cannot drift apart. What a pattern cannot say (the Luhn digit,
an IBAN's country length and mod-97, an expiry not in the past) is checked here and written in
the schema's descriptions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from gateways.methods import PaymentMethod

from .masking import is_sensitive_auth_key, mask_name, mask_text

# A payout needs a destination.
WITHDRAWAL_METHODS = frozenset({PaymentMethod.CARD, PaymentMethod.BANK_ACCOUNT, PaymentMethod.WALLET})
# Methods whose details a customer may save (CONTRACT §12, "Saved").
SAVABLE_METHODS = WITHDRAWAL_METHODS
# Methods whose details Paygate can collect itself on the pay page (CONTRACT §12, "Collected by Paygate"):
# a deposit with `return_url` and one of these but no `payment_details`.
COLLECTABLE_METHODS = frozenset({PaymentMethod.CARD, PaymentMethod.BANK_ACCOUNT})

HOLDER_NAME_MAX_LENGTH = 255


@dataclass(frozen=True, slots=True)
class DetailField:
    """One field of a method's details: its pattern (after surrounding white space is removed)."""

    pattern: str
    description: str
    required: bool = True


# Patterns use only what ECMA-262, Rust's regex and Python's `re` read alike (core/schema.py).
_DIGITS = "0123456789"
CARD_FIELDS = {
    "number": DetailField("^[0-9]{12,19}$", "12 to 19 digits, no spaces; the last is the Luhn check digit."),
    "exp_month": DetailField("^(?:0?[1-9]|1[0-2])$", 'The expiry month, "1" to "12" (or "01" to "09").'),
    "exp_year": DetailField("^[0-9]{4}$", "The expiry year, four digits; with the month, not in the past."),
    "cvc": DetailField(
        "^[0-9]{3,4}$", "3 or 4 digits. Never returned, never saved, deleted once the transaction is final.", False
    ),
    "holder_name": DetailField("", f"The name on the card, 1 to {HOLDER_NAME_MAX_LENGTH} characters."),
}
BANK_ACCOUNT_FIELDS = {
    "iban": DetailField(
        "^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$",
        "ISO 13616, upper case without spaces: the country's length and a valid mod-97 check. "
        "Either `iban`, or `account_number` with `bank_code`.",
        False,
    ),
    "account_number": DetailField("^[A-Za-z0-9]{4,34}$", "4 to 34 letters or digits; with `bank_code`.", False),
    "bank_code": DetailField(
        "^[A-Za-z0-9](?:[A-Za-z0-9-]{0,18}[A-Za-z0-9])?$",
        "The routing number, sort code or bank code: 1 to 20 letters, digits or inner hyphens.",
        False,
    ),
    "bic": DetailField("^[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?$", "Optional: the bank's BIC, 8 or 11 characters.", False),
    "holder_name": DetailField("", f"The account holder's name, 1 to {HOLDER_NAME_MAX_LENGTH} characters."),
}
WALLET_FIELDS = {
    "provider": DetailField("^[a-z][a-z0-9_-]{1,31}$", 'The wallet, lower case, e.g. "paypal".'),
    "account": DetailField(
        "^(?:[^@\\u0000-\\u0020\\u007f\\ufffe\\uffff]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,120}[A-Za-z0-9])?"
        "\\.[A-Za-z]{2,63}|\\+[1-9][0-9]{6,14})$",
        "The wallet's e-mail address, or its phone number as E.164 (+ and 7 to 15 digits).",
    ),
}
METHOD_FIELDS: dict[str, dict[str, DetailField]] = {
    PaymentMethod.CARD: CARD_FIELDS,
    PaymentMethod.BANK_ACCOUNT: BANK_ACCOUNT_FIELDS,
    PaymentMethod.WALLET: WALLET_FIELDS,
    PaymentMethod.REDIRECT: {},
}

# ISO 13616 lengths, from the SWIFT IBAN registry.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


# What no pattern can say (the schema's descriptions do): the checks after the patterns.
LUHN_MESSAGE = "Not a valid card number (its check digit is wrong)."
EXPIRED_MESSAGE = "The card has expired."
IBAN_MESSAGE = "Not a valid IBAN (its country's length or its check digits are wrong)."
BEYOND_PATTERNS = frozenset({LUHN_MESSAGE, EXPIRED_MESSAGE, IBAN_MESSAGE})


def luhn_valid(number: str) -> bool:
    """The Luhn (mod 10) check of a string of ASCII digits."""
    if not number or any(ch not in _DIGITS for ch in number):
        return False
    total = 0
    for index, ch in enumerate(reversed(number)):
        digit = ord(ch) - 48
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616: a known country, that country's length, and the mod-97 check equal to 1."""
    if re.fullmatch(BANK_ACCOUNT_FIELDS["iban"].pattern, iban) is None:
        return False
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _text_error(value: str, field: DetailField) -> str | None:
    if not field.pattern:  # a name: any text of the allowed length
        if not value:
            return "This field may not be blank."
        if len(value) > HOLDER_NAME_MAX_LENGTH:
            return f"At most {HOLDER_NAME_MAX_LENGTH} characters."
        return None
    if re.fullmatch(field.pattern, value) is None:
        return field.description
    return None


def method_details_errors(method: str, details: dict[str, Any], *, today: date) -> dict[str, list[str]]:
    """The errors of `details` for `method`, by field (empty when valid). Values are already stripped."""
    fields = METHOD_FIELDS[method]
    errors: dict[str, list[str]] = {}
    for key in details:
        if key not in fields:
            errors[key] = [f"Unknown field for {method}."]
    for key, rule in fields.items():
        value = details.get(key)
        if value is None:
            if rule.required:
                errors[key] = ["This field is required."]
            continue
        if not isinstance(value, str):
            errors[key] = ["Must be text."]
            continue
        problem = _text_error(value, rule)
        if problem is not None:
            errors[key] = [problem]
    if method == PaymentMethod.CARD:
        _card_errors(details, errors, today=today)
    elif method == PaymentMethod.BANK_ACCOUNT:
        _bank_account_errors(details, errors)
    return errors


def _card_errors(details: dict[str, Any], errors: dict[str, list[str]], *, today: date) -> None:
    if "number" not in errors and not luhn_valid(details["number"]):
        errors["number"] = [LUHN_MESSAGE]
    expiry_readable = "exp_month" not in errors and "exp_year" not in errors
    if expiry_readable and (int(details["exp_year"]), int(details["exp_month"])) < (today.year, today.month):
        errors["exp_year"] = [EXPIRED_MESSAGE]


def _bank_account_errors(details: dict[str, Any], errors: dict[str, list[str]]) -> None:
    has_iban = "iban" in details
    has_account = "account_number" in details or "bank_code" in details
    if has_iban and has_account:
        errors.setdefault("iban", ["Give either iban, or account_number with bank_code, not both."])
    elif has_iban:
        if "iban" not in errors and not iban_valid(details["iban"]):
            errors["iban"] = [IBAN_MESSAGE]
    elif has_account:
        for key in ("account_number", "bank_code"):
            if key not in details:
                errors.setdefault(
                    key, [f"Required with {'bank_code' if key == 'account_number' else 'account_number'}."]
                )
    else:
        errors.setdefault("iban", ["Required: iban, or account_number with bank_code."])


def method_input_errors(
    *,
    transaction_type: str,
    method: str,
    details: dict[str, Any],
    details_given: bool,
    today: date,
    saved_method_given: bool = False,
    save: bool = False,
    return_url_given: bool = False,
) -> dict[str, Any]:
    """The errors of a create request's method and details, named as the error body names them:
    `{"payment_details": {"number": [...]}}` for a field of the details. `method` is "" when not given.

    A deposit with `return_url` and a collectable method may leave the details out: the customer
    types them on the pay page (`save_payment_method` then offers the customer a tick)."""
    errors: dict[str, Any] = {}
    if save and transaction_type != "deposit":
        errors["save_payment_method"] = ["Only a deposit can save its payment method."]
    elif save and (saved_method_given or method not in SAVABLE_METHODS):
        errors["save_payment_method"] = ["Needs payment_method card, bank_account or wallet, with its details."]
    if saved_method_given:
        if details_given:
            errors["payment_details"] = ["Leave out with payment_method_id: the saved method's details are used."]
        if method and method not in SAVABLE_METHODS:
            errors["payment_method"] = ["A saved method is a card, a bank_account or a wallet."]
        return errors
    if not method:
        return errors
    if transaction_type == "withdrawal" and method not in WITHDRAWAL_METHODS:
        return {**errors, "payment_method": ["A withdrawal needs a destination: card, bank_account or wallet."]}
    if not METHOD_FIELDS[method]:
        if details_given:
            errors["payment_details"] = [f"Must be left out for {method}: the customer gives them at the gateway."]
        return errors
    if not details_given:
        if transaction_type == "deposit" and return_url_given and method in COLLECTABLE_METHODS:
            return errors  # collected on the pay page
        return {**errors, "payment_details": [f"Required for {method}."]}
    details_errors = method_details_errors(method, details, today=today)
    return {**errors, "payment_details": details_errors} if details_errors else errors


# --- Saved methods (the vault app answers; payments never imports it) ---------------------------------


@dataclass(frozen=True, slots=True)
class SavedMethod:
    id: str
    type: str
    details: dict[str, str] = field(repr=False)


SavedMethodFinder = Callable[..., "SavedMethod | None"]
_finders: list[SavedMethodFinder] = []


def saved_method_finder_register(finder: SavedMethodFinder) -> None:
    """Called once by the app that keeps saved methods (vault), when Django starts."""
    if finder not in _finders:
        _finders.append(finder)


def saved_method_find(*, client_id: int, customer_reference: str, method_id: str) -> SavedMethod | None:
    """The customer's saved method of that id, with its details; None for any other (another client's,
    another customer's, deleted or unknown: the caller answers all of them alike)."""
    for finder in _finders:
        found = finder(client_id=client_id, customer_reference=customer_reference, method_id=method_id)
        if found is not None:
            return found
    return None


# --- Masking --------------------------------------------------------------------------------------

_FILL = "*" * 8


def mask_card_number(number: str) -> str:
    """At most the first six and last four digits (PCI DSS 3.4.1), never telling the length."""
    if len(number) >= 16:
        return number[:6] + "*" * 6 + number[-4:]
    return _FILL + number[-4:]


def mask_iban(iban: str) -> str:
    """The country and the last four characters."""
    return iban[:2] + "*" * 12 + iban[-4:]


def mask_account(account: str) -> str:
    """An e-mail address keeps its first character and its domain; a phone number its last four digits."""
    local, at, domain = account.partition("@")
    if at:
        return local[:1] + "***@" + domain
    return _FILL + account[-4:]


_PLAIN_KEYS = frozenset({"exp_month", "exp_year", "bic", "provider"})


def mask_method_details(method: str, details: dict[str, Any]) -> dict[str, Any]:
    """Each field masked by what it is; security codes left out altogether, not even masked."""
    masked: dict[str, Any] = {}
    for key, value in details.items():
        if is_sensitive_auth_key(key) or not isinstance(value, str):
            continue
        if key in _PLAIN_KEYS:
            masked[key] = value
        elif key == "holder_name":
            masked[key] = mask_name(value)
        elif key == "number" and method == PaymentMethod.CARD:
            masked[key] = mask_card_number(value)
        elif key == "iban":
            masked[key] = mask_iban(value)
        elif key == "account" and method == PaymentMethod.WALLET:
            masked[key] = mask_account(value)
        elif key == "account_number":
            masked[key] = _FILL + value[-4:] if len(value) >= 8 else mask_text(value)
        else:
            masked[key] = mask_text(value)
    return masked


def details_last4(method: str, details: dict[str, Any]) -> str:
    """The last four characters a customer recognises their method by."""
    for key in ("number", "iban", "account_number", "account"):
        value = details.get(key)
        if isinstance(value, str) and value:
            return value[-4:]
    return ""


def gateway_payment_method(txn: Any) -> dict[str, Any]:
    """What the gateway's request carries of a transaction's method (CONTRACT §12): its name and its
    decrypted details (text values only); nothing for free-form details, which never reach a gateway."""
    if not txn.payment_method:
        return {}
    details = {key: value for key, value in txn.payment_details.items() if isinstance(value, str)}
    return {"payment_method": txn.payment_method, "payment_details": details}
