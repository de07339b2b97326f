"""The pay page's token (CONTRACT §11): signed, expiring, bound to one transaction.

Keyed with SECRET_KEY under its own salt, so a token is never guessable from the id and a
token of one transaction never opens another. Deterministic for one (id, expiry): the URL in
the 202 and in every later event is the same.
"""

from __future__ import annotations

import time

from django.core import signing

_SALT = "paygate.pay-page"


def pay_token_make(*, transaction_id: str, expires_at: int) -> str:
    """A token for `transaction_id`, valid until the unix time `expires_at`."""
    return signing.Signer(salt=_SALT).sign_object({"i": str(transaction_id), "e": int(expires_at)})


def pay_token_valid(token: str, *, transaction_id: str, now: float | None = None) -> bool:
    """True only for an unaltered, unexpired token made for this very transaction."""
    if not token or len(token) > 500:
        return False
    try:
        value = signing.Signer(salt=_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError):
        return False
    if not isinstance(value, dict) or value.get("i") != str(transaction_id):
        return False
    expires_at = value.get("e")
    if not isinstance(expires_at, int) or isinstance(expires_at, bool):
        return False
    return (time.time() if now is None else now) < expires_at
