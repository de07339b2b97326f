"""Gateway calls' HTTP: the shared client of core.http, allowed only where gateway calls may go."""

from __future__ import annotations

import threading

from django.conf import settings

from core.http import MAX_REPLY_BYTES, HttpClient
from core.netguard import AddressPolicy


def gateway_address_policy() -> AddressPolicy:
    """Where gateway calls may go: with DEBUG off, https to public addresses or an allow-listed host."""
    return AddressPolicy(enforce=not settings.DEBUG, allowed_hosts=frozenset(settings.PAYGATE_GATEWAY_ALLOWED_HOSTS))


def gateway_http_client(*, max_reply_bytes: int = MAX_REPLY_BYTES) -> HttpClient:
    """A client for gateway calls: checked against `gateway_address_policy`, logged as `gateway=<code> ...`."""
    return HttpClient(address_policy=gateway_address_policy, peer_kind="gateway", max_reply_bytes=max_reply_bytes)


_default_client: HttpClient | None = None
_default_lock = threading.Lock()


def default_client() -> HttpClient:
    """The process-wide shared client (its session is rebuilt after a fork)."""
    global _default_client
    if _default_client is None:
        with _default_lock:
            if _default_client is None:
                _default_client = gateway_http_client()
    return _default_client
