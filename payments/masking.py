"""Masking of sensitive values for anything a person or a log can read."""

from __future__ import annotations

from typing import Any

_NAME_KEYS = frozenset({"holder_name", "name", "first_name", "last_name", "full_name", "account_holder"})


def mask_text(value: str) -> str:
    """Keep the first and last four characters of long values, nothing of short ones.

    The masked middle has a fixed width, so the mask does not tell the value's length.
    """
    if len(value) > 8:
        return value[:4] + "*" * 12 + value[-4:]
    return "*" * 8


def mask_name(value: str) -> str:
    return " ".join(word[:1] + "*" * (len(word) - 1) for word in value.split(" "))


def mask_details(details: Any) -> Any:
    if isinstance(details, dict):
        return {
            key: mask_name(value) if key in _NAME_KEYS and isinstance(value, str) else mask_details(value)
            for key, value in details.items()
        }
    if isinstance(details, list):
        return [mask_details(item) for item in details]
    if details is None or isinstance(details, bool):
        return details
    return mask_text(str(details))
