"""The one masking rule, and which keys hold sensitive authentication data.

Shared by the API, the admin, error bodies and the log redactor, so that a value is never
shown in one place with more characters than in another.
"""

from __future__ import annotations

import re
from typing import Any

# Long enough to be a card number or an IBAN: the first four and last four are shown, which
# PCI DSS allows for a PAN, and the middle has a fixed width so the length is not told either.
MASK_LONG_FROM = 13
# Below this nothing is shown at all: a third of six characters would already be two.
MASK_NOTHING_BELOW = 7
_FILL = "*" * 8

# Sensitive authentication data (PCI DSS 3.3.1): card security codes, PINs and track data.
# A key matches when it is one of these, or when one of its words is (`card_cvv`, `cardCvc`,
# `pin_block`, `Track2`); compared case-insensitively.
_SAD_WORDS = frozenset(
    {
        "cvv",
        "cvv2",
        "cvc",
        "cvc2",
        "cid",
        "cav2",
        "csc",
        "cvn",
        "cvd",
        "pin",
        "pinblock",
        "track",
        "track1",
        "track2",
        "track3",
        "trackdata",
        "magstripe",
    }
)
_SAD_JOINED = frozenset(
    {
        "securitycode",
        "cardsecuritycode",
        "verificationcode",
        "cardverificationcode",
        "cardverificationvalue",
        "pinblock",
        "trackdata",
        "magneticstripe",
        "magstripe",
    }
)
_WORDS = re.compile(r"[A-Z]?[a-z]+\d*|[A-Z]+\d*(?![a-z])|\d+")


def mask_text(value: str) -> str:
    """13 characters or more: first four and last four. Fewer: at most a third, from the end.

    Under seven characters nothing is shown. A 9-digit routing number keeps its last three
    digits, a 10-digit account number its last three, a 12-character one its last four.
    """
    if len(value) >= MASK_LONG_FROM:
        return value[:4] + "*" * 12 + value[-4:]
    if len(value) < MASK_NOTHING_BELOW:
        return _FILL
    return _FILL + value[-(len(value) // 3) :]


def is_sensitive_auth_key(key: object) -> bool:
    """Whether a payment-details key names a security code, a PIN or track data."""
    if not isinstance(key, str):
        return False
    joined = re.sub(r"[^a-z0-9]", "", key.lower())
    if joined in _SAD_WORDS or joined in _SAD_JOINED:
        return True
    return any(word.lower() in _SAD_WORDS for word in _WORDS.findall(key))


# Keys whose values are card or bank numbers, by word: `account_number`, `routingNumber`, `iban`.
_ACCOUNT_WORDS = frozenset({"account", "acct", "iban", "pan", "card", "routing", "aba", "bsb", "clabe", "cbu"})
_ACCOUNT_JOINED = frozenset({"sortcode", "cardnumber", "accountnumber", "routingnumber"})


def is_account_key(key: str) -> bool:
    """Whether a key names a card or bank number (the log redactor masks its value)."""
    if re.sub(r"[^a-z0-9]", "", key.lower()) in _ACCOUNT_JOINED:
        return True
    return any(re.sub(r"\d+$", "", word.lower()) in _ACCOUNT_WORDS for word in _WORDS.findall(key))


def without_sensitive_auth(details: Any) -> Any:
    """`details` without any entry whose key is sensitive authentication data, at any depth."""
    if isinstance(details, dict):
        return {key: without_sensitive_auth(value) for key, value in details.items() if not is_sensitive_auth_key(key)}
    if isinstance(details, list):
        return [without_sensitive_auth(item) for item in details]
    return details


def has_sensitive_auth(details: Any) -> bool:
    if isinstance(details, dict):
        return any(is_sensitive_auth_key(key) or has_sensitive_auth(value) for key, value in details.items())
    if isinstance(details, list):
        return any(has_sensitive_auth(item) for item in details)
    return False
