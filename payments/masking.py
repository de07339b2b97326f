"""Masking of payment data for anything a person or a log can read, and which keys hold what.

The masking rule itself is core's (`core.masking.mask_text`); the words that make a key a
card or bank number, or sensitive authentication data, are the payments' and are given to
the log redactor when the app is ready (`payments.apps`).
"""

from __future__ import annotations

from typing import Any

from core.masking import key_joined, key_words, mask_text

__all__ = [
    "has_sensitive_auth",
    "is_account_key",
    "is_sensitive_auth_key",
    "mask_details",
    "mask_name",
    "mask_text",
    "without_sensitive_auth",
]

_NAME_KEYS = frozenset({"holder_name", "name", "first_name", "last_name", "full_name", "account_holder"})

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
# Keys whose values are card or bank numbers, by word: `account_number`, `routingNumber`, `iban`.
_ACCOUNT_WORDS = frozenset({"account", "acct", "iban", "pan", "card", "routing", "aba", "bsb", "clabe", "cbu"})
_ACCOUNT_JOINED = frozenset({"sortcode", "cardnumber", "accountnumber", "routingnumber"})


def is_sensitive_auth_key(key: object) -> bool:
    """Whether a payment-details key names a security code, a PIN or track data."""
    if not isinstance(key, str):
        return False
    joined = key_joined(key)
    if joined in _SAD_WORDS or joined in _SAD_JOINED:
        return True
    return any(word in _SAD_WORDS for word in key_words(key))


def is_account_key(key: str) -> bool:
    """Whether a key names a card or bank number (the log redactor masks its value)."""
    if key_joined(key) in _ACCOUNT_JOINED:
        return True
    return any(word.rstrip("0123456789") in _ACCOUNT_WORDS for word in key_words(key))


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


def mask_name(value: str) -> str:
    return " ".join(word[:1] + "*" * (len(word) - 1) for word in value.split(" "))


def mask_details(details: Any) -> Any:
    """Every value masked; security codes, PINs and track data left out altogether, not even masked."""
    if isinstance(details, dict):
        return {
            key: mask_name(value) if key in _NAME_KEYS and isinstance(value, str) else mask_details(value)
            for key, value in details.items()
            if not is_sensitive_auth_key(key)
        }
    if isinstance(details, list):
        return [mask_details(item) for item in details]
    if details is None or isinstance(details, bool):
        return details
    return mask_text(str(details))
