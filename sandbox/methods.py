"""What a sandbox gateway makes of a payment's method and details (CONTRACT §12).

The sandbox stands in for a third party, so it checks details with its own code, written apart
from Paygate's (payments/methods.py): two implementations that must agree on the published test
numbers catch a bug in either. It keeps nothing it could leak: each field's last four characters
at most, and never anything of a security code.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

INVALID_DETAILS_REASON = "invalid_payment_details"
METHODS = ("card", "bank_account", "wallet", "redirect")
_SECURITY_CODES = frozenset({"cvc", "cvv", "cvv2", "cvc2", "pin"})

# The IBAN lengths of the countries the demo and the tests use, and a few more.
_IBAN_LENGTH = {
    "AT": 20, "BE": 16, "BR": 29, "CH": 21, "DE": 22, "DK": 18, "ES": 24, "FI": 18, "FR": 27, "GB": 22,
    "IE": 22, "IT": 27, "LU": 20, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "SE": 24,
}  # fmt: skip
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")


def _mod10(number: str) -> bool:
    """Luhn, the other way round from Paygate's: double every second digit from the left of an even-length number."""
    digits = [int(ch) for ch in number]
    start = len(digits) % 2  # the digits doubled are those at even distance from the check digit + 1
    total = 0
    for position, digit in enumerate(digits):
        if position % 2 == start:
            doubled = digit * 2
            total += doubled // 10 + doubled % 10
        else:
            total += digit
    return total % 10 == 0


def _iban_ok(iban: str) -> bool:
    if len(iban) < 5 or _IBAN_LENGTH.get(iban[:2]) != len(iban):
        return False
    if not all(ch in string.digits + string.ascii_uppercase for ch in iban):
        return False
    # Piecewise mod 97, as ISO 7064 describes it for systems without big integers.
    remainder = 0
    for ch in iban[4:] + iban[:4]:
        for digit in str(int(ch, 36)):
            remainder = (remainder * 10 + int(digit)) % 97
    return remainder == 1


def details_valid(method: str, details: Mapping[str, str]) -> bool:
    """Whether the details would do for their method (a real gateway declines those that do not)."""
    if method == "redirect":
        return not details
    if method == "card":
        number = details.get("number", "")
        month, year = details.get("exp_month", ""), details.get("exp_year", "")
        return (
            number.isascii()
            and number.isdigit()
            and 12 <= len(number) <= 19
            and _mod10(number)
            and month.isascii()
            and month.isdigit()
            and 1 <= int(month) <= 12
            and len(year) == 4
            and year.isascii()
            and year.isdigit()
        )
    if method == "bank_account":
        if "iban" in details:
            return _iban_ok(details["iban"])
        return bool(details.get("account_number")) and bool(details.get("bank_code"))
    if method == "wallet":
        account = details.get("account", "")
        return bool(details.get("provider")) and bool(_EMAIL.fullmatch(account) or _PHONE.fullmatch(account))
    return False


def details_seen(details: Mapping[str, str]) -> dict[str, str]:
    """Which fields arrived, each with only its last four characters; a security code with none."""
    return {key: "***" if key.lower() in _SECURITY_CODES else value[-4:] for key, value in details.items()}


def details_from_json(raw: Any) -> dict[str, str] | None:
    """The JSON request's `payment_details`: an object of strings (None when it is not one)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        return None
    return {str(key): value for key, value in raw.items()}


def details_from_soap(params: Mapping[str, str], element: str = "PaymentDetails") -> dict[str, str]:
    """`PaymentDetails` children (read as `PaymentDetails.<Name>`), named as in JSON: `ExpMonth` → `exp_month`."""
    prefix = element + "."
    return {
        re.sub(r"(?<!^)(?=[A-Z])", "_", name[len(prefix) :]).lower(): value
        for name, value in params.items()
        if name.startswith(prefix)
    }
