"""The one outbound HTTP client: every call Paygate makes to another service goes through it.

A pooled `requests.Session` without automatic retries: whether to retry, and where,
is the caller's decision (a failover, a retry schedule), and it needs to
know exactly what happened. So every technical fault becomes a typed `TransportError`
whose `submitted` flag says whether the request may have reached the peer. Each call
has a connect timeout, a read timeout and a wall-clock deadline, is measured, and is
logged without its headers or body.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from core import deadline as core_deadline
from core.netguard import AddressPolicy, BlockedAddress, GuardedHTTPAdapter

logger = logging.getLogger(__name__)

POOL_MAXSIZE = 20
# Replies are small; a bigger one is a fault, not something to buffer.
MAX_REPLY_BYTES = 1024 * 1024
_CHUNK_BYTES = 64 * 1024
USER_AGENT = "paygate/1"


class TransportError(Exception):
    """A technical fault talking to a peer: no usable HTTP reply."""

    code: ClassVar[str] = "transport_error"
    # False only when the request certainly never reached the peer.
    submitted: ClassVar[bool] = True

    def __init__(self, message: str, *, latency_ms: float | None = None) -> None:
        super().__init__(message)
        self.latency_ms = latency_ms


class ConnectionRefused(TransportError):
    code = "connection_refused"
    submitted = False


class ConnectTimeout(TransportError):
    code = "connect_timeout"
    submitted = False


class ConnectFailed(TransportError):
    """No connection could be opened (name resolution, unreachable network...)."""

    code = "connect_failed"
    submitted = False


class AddressBlocked(ConnectFailed):
    """The peer's address may not be called (not https, or not a public address): nothing was sent."""

    code = "address_blocked"


class InvalidRequest(TransportError):
    """The request could not even be prepared (bad URL or header): nothing was sent."""

    code = "invalid_request"
    submitted = False


class ReadTimeout(TransportError):
    code = "timeout"


class DeadlineExceeded(ReadTimeout):
    """The whole exchange took longer than its deadline: its socket was shut (a peer that trickles)."""


class ConnectionBroken(TransportError):
    """The connection failed after the request may have been sent."""

    code = "connection_error"


class ReplyTooLarge(TransportError):
    code = "reply_too_large"


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    latency_ms: float


class HttpClient:
    """Thread-safe, fork-safe wrapper around one pooled `requests.Session`.

    Every new connection is checked against `address_policy()` after its name is resolved,
    and goes to the address that was checked (core.netguard): a peer's name that starts
    pointing inside the network is refused when the connection is opened. `peer_kind`
    names the peer in each call's log line and its fields (`<peer_kind>=<peer> POST /path status=200 latency_ms=12.3`).
    """

    def __init__(
        self,
        *,
        address_policy: Callable[[], AddressPolicy],
        peer_kind: str,
        pool_maxsize: int = POOL_MAXSIZE,
        pool_connections: int = 4,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self._peer_kind = peer_kind
        self._pool_maxsize = pool_maxsize
        self._pool_connections = pool_connections  # hosts whose pools are kept
        self._max_reply_bytes = max_reply_bytes
        self._address_policy = address_policy
        self._pid = os.getpid()
        self._session = self._new_session()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # Proxies, .netrc credentials and CA bundles from the environment must not
        # silently change where a request goes or which Authorization header it carries.
        session.trust_env = False
        session.headers["User-Agent"] = USER_AGENT
        adapter = GuardedHTTPAdapter(
            address_policy=self._address_policy,
            pool_connections=self._pool_connections,
            pool_maxsize=self._pool_maxsize,
            max_retries=0,
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    @property
    def session(self) -> requests.Session:
        # Pooled sockets inherited across fork() would be shared by two processes. The
        # inherited session is dropped, not closed: closing could end the parent's TLS
        # sessions.
        pid = os.getpid()
        if self._pid != pid:
            self._session = self._new_session()
            self._pid = pid
        return self._session

    def close(self) -> None:
        self._session.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        connect_timeout: float,
        read_timeout: float,
        peer: str,
        deadline: float | None = None,
    ) -> HttpReply:
        """Send one request; raise a `TransportError` subclass if no full reply came back.

        The whole exchange (connection, request, reply and its body) ends within `deadline`
        seconds (by default the connect timeout plus the read timeout): past it, its socket is
        shut and `DeadlineExceeded` raised, however slowly the peer keeps sending.
        """
        path = urlsplit(url).path or "/"
        started = time.perf_counter()
        total = deadline if deadline is not None else connect_timeout + read_timeout
        try:
            with core_deadline.deadline(total) as scope:
                try:
                    status, reply_headers, body = self._exchange(
                        method, url, headers=headers, data=data, timeout=(connect_timeout, read_timeout)
                    )
                except Exception as exc:
                    if scope.expired:
                        raise DeadlineExceeded(f"{method} {path}: no full reply within {total:g} s") from exc
                    raise
                if scope.expired:  # a reply read until the connection closed may have been cut short
                    raise DeadlineExceeded(f"{method} {path}: no full reply within {total:g} s")
        except TransportError as exc:
            exc.latency_ms = _elapsed_ms(started)
            self._log_call(peer, method, path, status=None, latency_ms=exc.latency_ms, error=exc.code)
            raise
        except requests.RequestException as exc:
            error = classify(exc, f"{method} {path}")
            error.latency_ms = _elapsed_ms(started)
            self._log_call(peer, method, path, status=None, latency_ms=error.latency_ms, error=error.code)
            raise error from exc
        latency_ms = _elapsed_ms(started)
        self._log_call(peer, method, path, status=status, latency_ms=latency_ms, error=None)
        return HttpReply(status=status, headers=reply_headers, body=body, latency_ms=latency_ms)

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        timeout: tuple[float, float],
    ) -> tuple[int, Mapping[str, str], bytes]:
        with self.session.request(
            method,
            url,
            headers=dict(headers or {}),
            data=data,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        ) as response:
            body = self._read_body(response)
            return response.status_code, response.headers, body

    def _read_body(self, response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self._max_reply_bytes:
            raise ReplyTooLarge(f"reply declares {declared} bytes")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
            size += len(chunk)
            if size > self._max_reply_bytes:
                raise ReplyTooLarge(f"reply exceeds {self._max_reply_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _log_call(
        self, peer: str, method: str, path: str, *, status: int | None, latency_ms: float, error: str | None
    ) -> None:
        # Never bodies nor headers: they carry credentials and customer data.
        logger.info(
            "%s=%s %s %s status=%s latency_ms=%.1f%s",
            self._peer_kind,
            peer,
            method,
            path,
            status if status is not None else "-",
            latency_ms,
            f" error={error}" if error else "",
            extra={
                self._peer_kind: peer,
                "http_method": method,
                "http_path": path,
                "http_status": status,
                "latency_ms": latency_ms,
                "error": error,
            },
        )


# Raised while preparing the request, before any connection is opened.
_UNSENDABLE = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
)


def classify(exc: requests.RequestException, what: str) -> TransportError:
    """Sort a `requests` failure by whether the request may have reached the peer."""
    name = type(exc).__name__
    if isinstance(exc, requests.ConnectTimeout):  # also a ConnectionError: test first
        return ConnectTimeout(f"{what}: connect timed out")
    if isinstance(exc, requests.ReadTimeout) or _caused_by(exc, urllib3.exceptions.ReadTimeoutError):
        return ReadTimeout(f"{what}: no reply within the read timeout")
    if isinstance(exc, _UNSENDABLE):
        return InvalidRequest(f"{what}: {name}")
    if _caused_by(exc, BlockedAddress):
        return AddressBlocked(f"{what}: address not allowed")
    if _caused_by(exc, urllib3.exceptions.NewConnectionError):
        if _caused_by(exc, ConnectionRefusedError):
            return ConnectionRefused(f"{what}: connection refused")
        return ConnectFailed(f"{what}: could not connect ({name})")
    return ConnectionBroken(f"{what}: {name}")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    return any(isinstance(link, kind) for link in _chain(exc))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    # requests wraps urllib3 errors in args[0]; urllib3 wraps socket errors in
    # MaxRetryError.reason and in __cause__.
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [
            *(arg for arg in current.args if isinstance(arg, BaseException)),
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
        ]
        pending.extend(link for link in linked if isinstance(link, BaseException))


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
