"""The address a request came from: the socket's, unless a trusted proxy forwarded it.

X-Forwarded-For is written by whoever sends the request, so only the entries added by
proxies listed in PAYGATE_TRUSTED_PROXIES are believed: reading from the right, the
first address that is not such a proxy is the client. Rate limits, the admin lockout
(django-axes) and logs all use this one function.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in proxies if item.strip())


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:5123"
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def client_ip(request: Any) -> str:
    """The client's address for `request` (a Django or DRF request); "" if the socket has none."""
    meta = request.META
    peer = _parse(meta.get("REMOTE_ADDR") or "")
    if peer is None:
        return ""
    trusted = _networks(tuple(settings.PAYGATE_TRUSTED_PROXIES))
    if not trusted or not _is_trusted(peer, trusted):
        return str(peer)
    client = peer
    hops = [hop for hop in (meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            # Garbage a trusted proxy passed on from further left: the last believed hop stands.
            break
        client = address
        if not _is_trusted(address, trusted):
            break
    return str(client)


def _is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: tuple[Network, ...]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


# One IPv6 subscriber gets a /64 (RFC 6177): counting per address would give it 2**64 tries.
IPV6_COUNTED_PREFIX = 64


def counted_address(address: str) -> str:
    """What failure limits count `address` under: an IPv4 address itself, an IPv6 address's /64."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_COUNTED_PREFIX}", strict=False))
    return address
