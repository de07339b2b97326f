"""Timestamped body signatures: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.

Gateways sign their callbacks this way (the `X-Signature` header, checked here); Paygate signs
the webhooks it sends the same way (`Paygate-Signature`). The timestamp inside the signed text
lets a receiver refuse a replayed old body.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable


class SignatureError(Exception):
    """The signature header is missing, malformed, stale or does not match."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def compute_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={compute_signature(secret=secret, timestamp=ts, body=body)}"


def parse_signature_header(header: str | None) -> tuple[int, list[str]]:
    if not header:
        raise SignatureError("signature_missing", "X-Signature header is required.")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("signature_malformed", "X-Signature timestamp is not an integer.") from None
        elif key == "v1":
            signatures.append(value.strip())
    if timestamp is None or not signatures:
        raise SignatureError("signature_malformed", "X-Signature must be 't=<unix seconds>,v1=<hex>'.")
    return timestamp, signatures


def verify_signature(
    *, header: str | None, body: bytes, secrets: Iterable[str], tolerance: int, now: float | None = None
) -> tuple[int, int]:
    """Check the header against each secret in order; return (index of the secret that matched, timestamp).

    Every candidate is compared in constant time, and the timestamp must be within
    `tolerance` seconds of now in either direction (a replayed old body is refused).
    """
    timestamp, signatures = parse_signature_header(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("signature_expired", "X-Signature timestamp is outside the allowed window.")
    matched: int | None = None
    for index, secret in enumerate(secrets):
        if not secret:
            continue
        expected = compute_signature(secret=secret, timestamp=timestamp, body=body)
        for candidate in signatures:
            if hmac.compare_digest(expected, candidate) and matched is None:
                matched = index
    if matched is None:
        raise SignatureError("signature_invalid", "X-Signature does not match.")
    return matched, timestamp
