"""What gateway adapters take and return: plain frozen dataclasses, no ORM.

An adapter is built from `GatewayCredentials`, turns a `PaymentRequest` into a wire
request and the wire reply into a `PaymentResult` (or a `LookupResult` for a status
look-up); likewise a `RefundRequest` into a `RefundResult` (`RefundLookupResult`). A
callback body becomes a `CallbackNotification` (a payment's) or a `RefundNotification`.
The four outcomes, the same for payments and refunds, draw the line the failover rules need:

- ACCEPTED: the gateway took the payment; its id is in `payment_id`.
- DECLINED: the customer's answer; never retried elsewhere, not a gateway fault.
- NOT_SUBMITTED: the gateway certainly did not act (connection refused, 503,
  SOAP `Server.Unavailable`); safe to fail over, counts against the gateway.
- UNKNOWN: it may have acted (timeout after sending, other 5xx or faults, a malformed
  reply); look the reference up before anything else.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    NOT_SUBMITTED = "not_submitted"
    UNKNOWN = "unknown"


class LookupStatus(enum.StrEnum):
    ACCEPTED = "accepted"  # received, not finished yet
    ACTION_REQUIRED = "action_required"  # received, waiting for the customer (CONTRACT §11)
    COMPLETED = "completed"
    FAILED = "failed"
    NOT_FOUND = "not_found"  # the gateway never received this reference
    UNAVAILABLE = "unavailable"  # the look-up itself failed: we still do not know


class RefundLookupStatus(enum.StrEnum):
    ACCEPTED = "accepted"  # received, not finished yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed, or declined when it was received
    NOT_FOUND = "not_found"  # the gateway never received this reference
    UNAVAILABLE = "unavailable"  # the look-up itself failed: we still do not know


@dataclass(frozen=True, slots=True)
class GatewayCredentials:
    code: str
    base_url: str
    api_key: str
    connect_timeout: float = 3.0
    read_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    reference: str  # our attempt id: the gateway's idempotency key
    transaction_id: str
    type: str  # "deposit" | "withdrawal"
    amount: Decimal
    currency: str
    country: str
    customer_id: str
    callback_url: str
    # Where the gateway sends the customer's browser after an action: Paygate's return endpoint.
    return_url: str | None = None
    # CONTRACT §12: the method and its decrypted details, only when the transaction names a method.
    # Out of repr, so that no log line or traceback ever shows them.
    payment_method: str = ""
    payment_details: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class CustomerAction:
    """What the gateway asks the customer to do before it can answer (CONTRACT §11)."""

    type: str  # "redirect" | "display_code"
    url: str | None = None  # redirect: where the browser goes
    method: str = "GET"  # redirect: "GET" | "POST"
    fields: tuple[tuple[str, str], ...] = ()  # redirect by POST: the form's fields, in order
    code: str | None = None  # display_code: what the customer pays with
    expires_at: str | None = None  # display_code: when the gateway stops taking the code

    def as_dict(self) -> dict[str, object]:
        if self.type == "display_code":
            return {"type": self.type, "code": self.code or "", "expires_at": self.expires_at}
        return {"type": self.type, "url": self.url, "method": self.method, "fields": dict(self.fields)}


@dataclass(frozen=True, slots=True)
class PaymentResult:
    outcome: Outcome
    payment_id: str | None = None
    action: CustomerAction | None = None  # accepted, but the customer must act first
    reason: str | None = None  # a decline's reason, from the gateway
    error: str | None = None  # a technical fault's short code, e.g. "connection_refused"
    latency_ms: float | None = None
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class LookupResult:
    status: LookupStatus
    payment_id: str | None = None
    error: str | None = None
    latency_ms: float | None = None
    action: CustomerAction | None = None  # ACTION_REQUIRED: what the customer must still do
    reason: str | None = None  # FAILED: the gateway's reason, when it gives one


@dataclass(frozen=True, slots=True)
class RefundRequest:
    reference: str  # our refund id: the gateway's idempotency key
    payment_id: str  # the gateway's id of the payment to refund (the one it returned when it accepted it)
    amount: Decimal
    currency: str
    callback_url: str


@dataclass(frozen=True, slots=True)
class RefundResult:
    outcome: Outcome
    refund_id: str | None = None
    reason: str | None = None  # a decline's reason, from the gateway
    error: str | None = None  # a technical fault's short code, e.g. "connection_refused"
    latency_ms: float | None = None
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class RefundLookupResult:
    status: RefundLookupStatus
    refund_id: str | None = None
    error: str | None = None
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class CallbackNotification:
    """A gateway's callback body about a payment, parsed from its own wire format."""

    event_id: str
    reference: str
    status: str  # "completed" | "failed"
    payment_id: str | None = None
    reason: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RefundNotification:
    """A gateway's callback body about a refund (JSON `"type": "refund"`, XML `<RefundNotification>`)."""

    event_id: str
    refund_id: str | None  # the gateway's id of the refund
    reference: str  # our refund id
    status: str  # "succeeded" | "failed"
    reason: str | None = None


class CallbackParseError(Exception):
    """The callback body is not a well-formed notification in the gateway's format."""


class HealthResult(enum.StrEnum):
    UP = "up"
    DOWN = "down"
