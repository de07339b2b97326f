"""Masking of sensitive values for anything a person or a log can read."""

from __future__ import annotations

from typing import Any

from core.masking import is_sensitive_auth_key, mask_text

__all__ = ["mask_details", "mask_name", "mask_text"]

_NAME_KEYS = frozenset({"holder_name", "name", "first_name", "last_name", "full_name", "account_holder"})


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
