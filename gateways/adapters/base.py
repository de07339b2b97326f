"""The gateway adapter interface and the flow every adapter shares.

A concrete adapter only builds wire requests and interprets wire replies (its
`<format>_transformers` module holds the wire format itself). Sending, timing and
turning technical faults into outcomes happen here, once, so the rule "an adapter
never raises on a gateway problem" holds for every format.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar, TypeVar

from core.http import HttpClient, HttpReply, TransportError
from gateways.adapters.http import default_client
from gateways.types import (
    CallbackNotification,
    CustomerAction,
    GatewayCredentials,
    HealthResult,
    LookupResult,
    LookupStatus,
    Outcome,
    PaymentRequest,
    PaymentResult,
    RefundLookupResult,
    RefundLookupStatus,
    RefundNotification,
    RefundRequest,
    RefundResult,
)

logger = logging.getLogger(__name__)

# Error codes adapters add to the transport ones (`TransportError.code`).
MALFORMED_REPLY = "malformed_reply"
SERVICE_UNAVAILABLE = "service_unavailable"
SERVER_ERROR = "server_error"
SOAP_FAULT = "soap_fault"
UNEXPECTED_STATUS = "unexpected_status"
IDEMPOTENCY_CONFLICT = "idempotency_conflict"
REJECTED_PREFIX = "rejected_"  # + the HTTP status or the SOAP fault code

_R = TypeVar("_R", PaymentResult, LookupResult, RefundResult, RefundLookupResult)
_Submitted = TypeVar("_Submitted", PaymentResult, RefundResult)
_LookedUp = TypeVar("_LookedUp", LookupResult, RefundLookupResult)

HEALTH_CONNECT_TIMEOUT = 2.0
HEALTH_READ_TIMEOUT = 3.0


class MalformedReply(Exception):
    """The gateway's reply is not in its documented format."""


MAX_ACTION_URL_LENGTH = 2000
MAX_ACTION_FIELDS = 20
MAX_ACTION_FIELD_LENGTH = 8000


def action_url_problem(url: str) -> str | None:
    """Why a gateway's action URL may not be shown to a browser, or None (CONTRACT §11).

    Absolute http(s) only; with DEBUG off https, unless the host is in
    PAYGATE_GATEWAY_ALLOWED_HOSTS (a test or on-premises gateway).
    """
    from urllib.parse import urlsplit

    from django.conf import settings

    if len(url) > MAX_ACTION_URL_LENGTH or any(ord(ch) <= 0x20 or ch in "\\\x7f" for ch in url):
        return "action url too long or with spaces, backslashes or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "action url is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return "action url must be an absolute http(s) URL without credentials"
    if parts.scheme != "https" and not settings.DEBUG and parts.hostname not in settings.PAYGATE_GATEWAY_ALLOWED_HOSTS:
        return "action url must be https"
    return None


def _iso_instant(value: str | None) -> str | None:
    """An ISO 8601 instant with its offset, as UTC `…Z`; None for anything else (it is then ours that counts)."""
    if not value or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


def customer_action(
    *,
    type_: str,
    url: str | None,
    method: str | None,
    fields: list[tuple[str, str]],
    code: str | None,
    expires_at: str | None,
) -> CustomerAction:
    """A gateway's action, checked whatever its wire format; MalformedReply if unusable."""
    if type_ == "redirect":
        if not url:
            raise MalformedReply("a redirect action needs a url")
        problem = action_url_problem(url)
        if problem:
            raise MalformedReply(problem)
        verb = (method or "GET").upper()
        if verb not in ("GET", "POST"):
            raise MalformedReply(f"unexpected action method {method!r}")
        if len(fields) > MAX_ACTION_FIELDS or any(
            len(k) > 255 or len(v) > MAX_ACTION_FIELD_LENGTH or not k for k, v in fields
        ):
            raise MalformedReply("too many or too long action fields")
        return CustomerAction(type="redirect", url=url, method=verb, fields=tuple(fields) if verb == "POST" else ())
    if type_ == "display_code":
        if not code or len(code) > 2000:
            raise MalformedReply("a display_code action needs a code of at most 2000 characters")
        return CustomerAction(type="display_code", code=code, expires_at=_iso_instant(expires_at))
    raise MalformedReply(f"unexpected action type {type_!r}")


@dataclass(frozen=True, slots=True)
class WireRequest:
    method: str
    path: str  # appended to the credentials' base_url
    # Kept out of repr: they carry the api key.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    body: bytes | None = field(default=None, repr=False)


class GatewayAdapter(ABC):
    """One gateway, reached with its credentials through the shared HTTP client."""

    data_format: ClassVar[str]
    # What the gateway sends its callbacks as (compare the media type, parameters aside).
    callback_content_types: ClassVar[tuple[str, ...]]

    def __init__(self, credentials: GatewayCredentials, http: HttpClient | None = None) -> None:
        self.credentials = credentials
        self._http = http

    @property
    def http(self) -> HttpClient:
        return self._http if self._http is not None else default_client()

    # --- the shared flow ----------------------------------------------------------------

    def create_payment(self, request: PaymentRequest) -> PaymentResult:
        """Submit a payment. Raises only `ValueError` for a request that cannot be encoded."""
        return self._submit(self.build_create_request(request), self.interpret_create_reply, PaymentResult)

    def lookup_payment(self, reference: str) -> LookupResult:
        """Ask the gateway what became of `reference`; UNAVAILABLE when it cannot tell us."""
        unavailable = LookupResult(status=LookupStatus.UNAVAILABLE)
        return self._look_up(self.build_lookup_request(reference), self.interpret_lookup_reply, unavailable)

    def create_refund(self, request: RefundRequest) -> RefundResult:
        """Submit a refund, with the outcomes of a payment. Raises only `ValueError` for a request
        that cannot be encoded."""
        return self._submit(self.build_refund_request(request), self.interpret_refund_reply, RefundResult)

    def lookup_refund(self, reference: str) -> RefundLookupResult:
        """Ask the gateway what became of the refund `reference`; UNAVAILABLE when it cannot tell us."""
        unavailable = RefundLookupResult(status=RefundLookupStatus.UNAVAILABLE)
        return self._look_up(
            self.build_refund_lookup_request(reference), self.interpret_refund_lookup_reply, unavailable
        )

    def _submit(
        self, wire: WireRequest, interpret: Callable[[HttpReply], _Submitted], result: type[_Submitted]
    ) -> _Submitted:
        try:
            reply = self._send(wire)
        except TransportError as exc:
            outcome = Outcome.UNKNOWN if exc.submitted else Outcome.NOT_SUBMITTED
            return result(outcome=outcome, error=exc.code, latency_ms=exc.latency_ms)
        interpreted = self._interpret(interpret, reply, result(outcome=Outcome.UNKNOWN))
        return replace(interpreted, latency_ms=reply.latency_ms, http_status=reply.status)

    def _look_up(
        self, wire: WireRequest, interpret: Callable[[HttpReply], _LookedUp], unavailable: _LookedUp
    ) -> _LookedUp:
        try:
            reply = self._send(wire)
        except TransportError as exc:
            return replace(unavailable, error=exc.code, latency_ms=exc.latency_ms)
        result = self._interpret(interpret, reply, unavailable)
        return replace(result, latency_ms=reply.latency_ms)

    def check_health(self) -> tuple[HealthResult, float]:
        """Probe the gateway with short timeouts; returns the result and the latency in ms."""
        connect_timeout = min(self.credentials.connect_timeout, HEALTH_CONNECT_TIMEOUT)
        read_timeout = min(self.credentials.read_timeout, HEALTH_READ_TIMEOUT)
        try:
            reply = self._send(self.build_health_request(), connect_timeout=connect_timeout, read_timeout=read_timeout)
        except TransportError as exc:
            return HealthResult.DOWN, exc.latency_ms or 0.0
        return (HealthResult.UP if reply.status == 200 else HealthResult.DOWN), reply.latency_ms

    def _send(
        self, wire: WireRequest, *, connect_timeout: float | None = None, read_timeout: float | None = None
    ) -> HttpReply:
        creds = self.credentials
        return self.http.send(
            wire.method,
            creds.base_url.rstrip("/") + wire.path,
            headers=wire.headers,
            data=wire.body,
            connect_timeout=creds.connect_timeout if connect_timeout is None else connect_timeout,
            read_timeout=creds.read_timeout if read_timeout is None else read_timeout,
            peer=creds.code,
        )

    def _interpret(self, interpret: Callable[[HttpReply], _R], reply: HttpReply, unknown: _R) -> _R:
        # The request was sent: whatever goes wrong reading the reply, the answer is
        # "we do not know", never an exception the caller could mistake for "not sent".
        try:
            return interpret(reply)
        except MalformedReply as exc:
            logger.warning("gateway=%s malformed reply (HTTP %s): %s", self.credentials.code, reply.status, exc)
        except Exception:
            logger.exception("gateway=%s reply could not be interpreted (HTTP %s)", self.credentials.code, reply.status)
        return replace(unknown, error=MALFORMED_REPLY)

    # --- what each format provides ------------------------------------------------------

    @abstractmethod
    def build_create_request(self, request: PaymentRequest) -> WireRequest: ...

    @abstractmethod
    def interpret_create_reply(self, reply: HttpReply) -> PaymentResult:
        """Map a reply to an outcome; raise `MalformedReply` when it cannot be read."""

    @abstractmethod
    def build_lookup_request(self, reference: str) -> WireRequest: ...

    @abstractmethod
    def interpret_lookup_reply(self, reply: HttpReply) -> LookupResult:
        """Map a reply to a lookup status; raise `MalformedReply` when it cannot be read."""

    # Refunds. Not abstract, so that an adapter without refunds (a test double) still builds;
    # both wire formats implement them.

    def build_refund_request(self, request: RefundRequest) -> WireRequest:
        raise NotImplementedError(f"{type(self).__name__} does not refund")

    def interpret_refund_reply(self, reply: HttpReply) -> RefundResult:
        """Map a reply to an outcome; raise `MalformedReply` when it cannot be read."""
        raise NotImplementedError(f"{type(self).__name__} does not refund")

    def build_refund_lookup_request(self, reference: str) -> WireRequest:
        raise NotImplementedError(f"{type(self).__name__} does not refund")

    def interpret_refund_lookup_reply(self, reply: HttpReply) -> RefundLookupResult:
        """Map a reply to a refund's lookup status; raise `MalformedReply` when it cannot be read."""
        raise NotImplementedError(f"{type(self).__name__} does not refund")

    def build_health_request(self) -> WireRequest:
        return WireRequest(method="GET", path="/health")

    @staticmethod
    @abstractmethod
    def parse_callback(body: bytes) -> CallbackNotification | RefundNotification:
        """Parse a callback body, a payment's or a refund's; raise `CallbackParseError` if it is
        not a valid notification."""


# --- HTTP status rules both formats share ----------------------------------------------------


def _outcome_for_status(status: int) -> tuple[Outcome, str]:
    if status == 503:
        return Outcome.NOT_SUBMITTED, SERVICE_UNAVAILABLE
    if status >= 500:
        return Outcome.UNKNOWN, SERVER_ERROR
    if status == 409:
        # An idempotency-key conflict: the gateway has seen this reference before.
        return Outcome.UNKNOWN, IDEMPOTENCY_CONFLICT
    if 400 <= status < 500:
        return Outcome.NOT_SUBMITTED, f"{REJECTED_PREFIX}{status}"
    return Outcome.UNKNOWN, UNEXPECTED_STATUS


def payment_result_for_status(status: int) -> PaymentResult:
    """The outcome of a reply that carries no usable answer, from its HTTP status alone."""
    outcome, error = _outcome_for_status(status)
    return PaymentResult(outcome=outcome, error=error)


def refund_result_for_status(status: int) -> RefundResult:
    """The outcome of a refund reply that carries no usable answer: the payment rules."""
    outcome, error = _outcome_for_status(status)
    return RefundResult(outcome=outcome, error=error)


def _lookup_error_for_status(status: int) -> str:
    if status == 503:
        return SERVICE_UNAVAILABLE
    if status >= 500:
        return SERVER_ERROR
    if 400 <= status < 500:
        return f"{REJECTED_PREFIX}{status}"
    return UNEXPECTED_STATUS


def lookup_result_for_status(status: int) -> LookupResult:
    """A lookup reply without a usable answer: we still do not know."""
    return LookupResult(status=LookupStatus.UNAVAILABLE, error=_lookup_error_for_status(status))


def refund_lookup_result_for_status(status: int) -> RefundLookupResult:
    """A refund lookup reply without a usable answer: we still do not know."""
    return RefundLookupResult(status=RefundLookupStatus.UNAVAILABLE, error=_lookup_error_for_status(status))


def is_success(status: int) -> bool:
    return 200 <= status < 300


def amount_string(amount: Decimal) -> str:
    """A plain decimal string ("25.00"): never a float, never exponent notation."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"amount must be a finite Decimal, got {amount!r}")
    return format(amount, "f")
