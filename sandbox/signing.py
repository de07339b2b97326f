"""How the sandbox signs the callbacks it sends, as a third-party gateway would.

Written apart from Paygate's verifier on purpose: a shared implementation would hide a bug
in both. A known-answer test pins each of them to the same published vector.
"""

from __future__ import annotations

import hmac


def sign_callback(*, secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Signature` value: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    mac = hmac.new(secret.encode("utf-8"), b"%d.%s" % (timestamp, body), "sha256")
    return f"t={timestamp},v1={mac.hexdigest()}"
