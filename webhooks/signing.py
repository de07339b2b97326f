"""How a delivery is signed: `Paygate-Signature` and the Standard Webhooks headers, with one secret.

Standard Webhooks (standardwebhooks.com): `webhook-id` (the event's id: the same on every try of
it), `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256>` of
"<id>.<timestamp>.<body>", keyed with the bytes the secret's base64 stands for. Secrets are
`whsec_` + base64 of 32 random bytes. Secrets made before this signing existed are URL-safe base64
(`-` and `_` for `+` and `/`, no padding): they stand for the same kind of 32 bytes and sign the
same way; their spec form (what a receiver's library expects) is `standard_secret(old)`.
`Paygate-Signature` (t=…,v1=hex HMAC-SHA256 of "<t>.<body>" keyed with the secret's text) stays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from core.signing import signature_header

SECRET_PREFIX = "whsec_"  # nosec B105  # the prefix every secret is shown with, not a secret
_SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of the Standard Webhooks signature: the bytes the secret's base64 (either alphabet) stands for."""
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_").rstrip("=") + "==")
    except (binascii.Error, ValueError):
        key = b""
    # A secret that is not base64 at all (never made here) still signs, with its text.
    return key or text.encode()


def standard_secret(secret: str) -> str:
    """The secret as Standard Webhooks libraries read it (standard base64); new secrets already are."""
    return SECRET_PREFIX + base64.b64encode(secret_key(secret)).decode()


def delivery_headers(*, secret: str, key: bytes, event_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The signed headers of one try (`key` is `secret_key(secret)`, worked out once per endpoint)."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "Paygate-Event-Id": event_id,
        "Paygate-Signature": signature_header(secret=secret, body=body, timestamp=timestamp),
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
    }
