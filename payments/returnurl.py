"""The merchant's `return_url` (CONTRACT §11): where the customer's browser goes at the end.

Paygate redirects a browser only to a URL it got from a gateway's answer or to this stored
one, so it is checked once, strictly, when the deposit is created.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

_CONTROL = {chr(c) for c in range(0x20)} | {"\x7f", " ", "\\"}


def return_url_problem(value: str) -> str | None:
    """Why `value` is not an acceptable return_url, or None."""
    if any(ch in _CONTROL for ch in value):
        return "Must not contain spaces, backslashes or control characters."
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "Must be an absolute http(s) URL."
    del port
    allowed = ("http", "https") if settings.DEBUG else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        return "Must be an absolute https URL." if not settings.DEBUG else "Must be an absolute http(s) URL."
    if parts.username is not None or parts.password is not None:
        return "Must not carry credentials."
    if not value.isascii():
        return "Must be ASCII (percent-encode anything else)."
    return None
