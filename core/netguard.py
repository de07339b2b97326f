"""Outbound addresses: where a server-side HTTP call may go (against SSRF and DNS rebinding).

A URL typed by an operator (a gateway's base URL, later a merchant's webhook URL) must
not let this service reach its own network: loopback, private, link-local, reserved,
multicast or unspecified addresses, in IPv4 or IPv6 (IPv4 addresses embedded in IPv6
ones included). The name is resolved once per connection, every answer is checked, and
the socket connects to a checked address, so a DNS answer that changes between the check
and the connection (rebinding) reaches nothing. TLS still names the host (SNI and
certificate check), and so does the Host header.

Nothing here knows about gateways or Django settings: callers build an `AddressPolicy`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from core import deadline

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses the name stands for.
Resolver = Callable[[str, int], list[str]]


class BlockedAddress(Exception):
    """The URL or the address it resolves to may not be called."""


def address_is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address; IPv4 inside IPv6 is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::/96) addresses reach the IPv4
        # address they carry: that is the one to judge.
        carried = address.ipv4_mapped or _nat64_ipv4(address)
        if carried is not None:
            return address_is_public(carried)
        # 6to4 (2002::/16) and Teredo tunnel to IPv4 addresses, which must be public too.
        tunnelled = [address.sixtofour, *(address.teredo or ())]
        if not all(address_is_public(item) for item in tunnelled if item is not None):
            return False
    if isinstance(address, ipaddress.IPv6Address) and address in _SITE_LOCAL:
        # Deprecated site-local (RFC 3879): Python 3.11 still calls it global.
        return False
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")


def _nat64_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (a literal gives itself)."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in answers))


@dataclass(frozen=True)
class AddressPolicy:
    """What an outbound call may reach.

    `enforce` off allows everything (development, tests on loopback). Hosts in
    `allowed_hosts` are called as they are, plain HTTP included: an operator's explicit
    decision, e.g. for containers on a private network. Otherwise the URL must be https
    (unless `require_https` is off) and every address its host resolves to `permitted`.
    """

    enforce: bool = True
    allowed_hosts: frozenset[str] = frozenset()
    require_https: bool = True
    resolver: Resolver = field(default=system_resolver, compare=False)
    # Whether a resolved address may be connected to; tests may widen it, never production.
    permitted: Callable[[IPAddress], bool] = field(default=address_is_public, compare=False)
    # Ports that may be connected to when enforced; empty: any.
    allowed_ports: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts", hosts_from(self.allowed_hosts))

    def is_allowed_host(self, host: str) -> bool:
        return _normal_host(host) in self.allowed_hosts

    def check_url(self, url: str) -> None:
        """Refuse a URL whose scheme or resolved addresses are not allowed (raises `BlockedAddress`)."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise BlockedAddress("The URL's port is not valid.") from None
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise BlockedAddress("Only http:// and https:// URLs with a host are allowed.")
        if not self.enforce or self.is_allowed_host(host):
            return
        if self.require_https and parts.scheme != "https":
            raise BlockedAddress("The URL must use https://.")
        self.checked_addresses(host, port or 443)

    def checked_addresses(self, host: str, port: int) -> list[str] | None:
        """The addresses to connect to, every one checked; None when this host is not restricted.

        One blocked answer refuses them all: a name that points inside the network even
        once is not one to trust with credentials.
        """
        if not self.enforce or self.is_allowed_host(host):
            return None
        if self.allowed_ports and port not in self.allowed_ports:
            raise BlockedAddress(f"port {port} is not allowed")
        try:
            addresses = self.resolver(host.strip("[]"), port)
        except (OSError, UnicodeError) as exc:
            raise BlockedAddress(f"{host} does not resolve ({type(exc).__name__}).") from None
        if not addresses:
            raise BlockedAddress(f"{host} does not resolve.")
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.permitted(address):
                raise BlockedAddress(f"{host} resolves to a non-public address ({address}).")
        return addresses


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


# --- the connection side: requests -> urllib3 ---------------------------------------------------


# The mixin is only ever combined with urllib3's HTTPConnection (see GuardedHTTPAdapter): the type
# checker sees it as one, so `self` and `super()` are checked against urllib3's own types.
if TYPE_CHECKING:
    _Connection = HTTPConnection
else:
    _Connection = object


class _GuardedConnectionMixin(_Connection):
    """Resolves, checks, then connects to a checked address; the host name stays for TLS and Host."""

    address_policy: Callable[[], AddressPolicy]
    requires_tls: bool = False

    def request(self, *args: Any, **kwargs: Any) -> None:
        # A pooled connection serves this exchange: its socket is bounded by the exchange's deadline.
        deadline.watch(self)
        super().request(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        sock = self._guarded_new_conn()
        deadline.watch(sock)
        return sock

    def _guarded_new_conn(self) -> socket.socket:
        policy = self.address_policy()
        try:
            if (
                policy.enforce
                and policy.require_https
                and not self.requires_tls
                and not policy.is_allowed_host(self.host)
            ):
                raise BlockedAddress(f"plain http to {self.host} is not allowed")
            addresses = policy.checked_addresses(self.host, self.port)
        except BlockedAddress as exc:
            raise NewConnectionError(self, f"Refused to connect: {exc}") from exc
        if addresses is None:
            return super()._new_conn()
        last_error: OSError | None = None
        for address in addresses:
            try:
                return urllib3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except socket.gaierror as exc:
                raise NameResolutionError(self.host, self, exc) from exc
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from exc
            except OSError as exc:
                last_error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}") from last_error


class GuardedHTTPAdapter(HTTPAdapter):
    """A `requests` adapter whose every new connection goes through `address_policy()`.

    The policy is asked at each connection, so a settings change applies without a new session.
    """

    def __init__(self, *, address_policy: Callable[[], AddressPolicy], **kwargs: Any) -> None:
        self._address_policy = address_policy
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        policy = staticmethod(self._address_policy)
        http_conn = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), {"address_policy": policy})
        https_conn = type(
            "GuardedHTTPSConnection",
            (_GuardedConnectionMixin, HTTPSConnection),
            {"address_policy": policy, "requires_tls": True},
        )
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }


def hosts_from(items: Iterable[str]) -> frozenset[str]:
    """A normalised allow-list from setting values."""
    return frozenset(_normal_host(item) for item in items if item.strip())
