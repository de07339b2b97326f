"""Keyed fingerprints (HMAC-SHA256) of data that must be compared but never recovered.

An unkeyed hash of a request holding a card number gives the number back to anyone who can
guess the rest: the masked card leaves only millions of candidates. Under a server-side key
(PAYGATE_FINGERPRINT_KEYS, newest first) the stored value is useless without the key; the
older keys still verify, so a rotation does not turn a genuine replay into a conflict.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings


def _keys() -> list[str]:
    return list(settings.PAYGATE_FINGERPRINT_KEYS)


def fingerprint(message: bytes) -> str:
    """HMAC-SHA256 of `message` under the newest key, as 64 hex digits."""
    return hmac.new(_keys()[0].encode(), message, hashlib.sha256).hexdigest()


def fingerprint_matches(message: bytes, stored: str | None) -> bool:
    """Whether `stored` is the fingerprint of `message` under any of the keys (constant time)."""
    if not stored:
        return False
    matched = False
    for key in _keys():
        candidate = hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
        matched |= hmac.compare_digest(candidate, stored)
    return matched
