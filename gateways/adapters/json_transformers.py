"""The JSON gateways' wire format: request bodies out, reply and callback bodies in."""

from __future__ import annotations

import json
from typing import Any

from core.parsers import reject_constant, unique_keys
from core.text import escape_unstorable, is_storable
from gateways.adapters.base import MalformedReply, amount_string, customer_action
from gateways.types import (
    CallbackNotification,
    CallbackParseError,
    CustomerAction,
    LookupStatus,
    PaymentRequest,
    RefundLookupStatus,
    RefundNotification,
    RefundRequest,
)

MAX_ID_LENGTH = 255

_LOOKUP_STATUSES = {
    "accepted": LookupStatus.ACCEPTED,
    "action_required": LookupStatus.ACTION_REQUIRED,
    "completed": LookupStatus.COMPLETED,
    "failed": LookupStatus.FAILED,
}
ACTION_REQUIRED = "action_required"
_CALLBACK_STATUSES = frozenset({"completed", "failed"})
_REFUND_LOOKUP_STATUSES = {
    "accepted": RefundLookupStatus.ACCEPTED,
    "succeeded": RefundLookupStatus.SUCCEEDED,
    "failed": RefundLookupStatus.FAILED,
}
_REFUND_CALLBACK_STATUSES = frozenset({"succeeded", "failed"})
REFUND_CALLBACK_TYPE = "refund"  # the callback's "type": a refund's; a payment's carries none


class _InvalidJson(ValueError):
    pass


# --- requests ----------------------------------------------------------------------------


def payment_body(request: PaymentRequest) -> bytes:
    body = {
        "reference": request.reference,
        "transaction_id": request.transaction_id,
        "type": request.type,
        "amount": amount_string(request.amount),
        "currency": request.currency,
        "country": request.country,
        "customer_id": request.customer_id,
        "callback_url": request.callback_url,
    }
    if request.return_url:
        body["return_url"] = request.return_url
    if request.payment_method:
        body.update(payment_method_fields(request))
    return _encode(body)


def payment_method_fields(request: PaymentRequest) -> dict[str, Any]:
    """CONTRACT §12: the method and its details, as given (only over the gateway's own connection)."""
    return {"payment_method": request.payment_method, "payment_details": dict(request.payment_details)}


def refund_body(request: RefundRequest) -> bytes:
    body = {
        "reference": request.reference,
        "payment_id": request.payment_id,
        "amount": amount_string(request.amount),
        "currency": request.currency,
        "callback_url": request.callback_url,
    }
    return _encode(body)


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- replies -----------------------------------------------------------------------------


def parse_object(body: bytes) -> dict[str, Any]:
    """Decode a JSON object strictly: UTF-8, no NaN/Infinity, no duplicate keys."""
    try:
        value = json.loads(
            body.decode("utf-8-sig"),
            parse_constant=reject_constant,
            object_pairs_hook=unique_keys,
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _InvalidJson(f"not valid JSON: {type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise _InvalidJson(f"expected a JSON object, got {type(value).__name__}")
    return value


def _reply_object(body: bytes) -> dict[str, Any]:
    try:
        return parse_object(body)
    except _InvalidJson as exc:
        raise MalformedReply(str(exc)) from None


def _required_id(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH or not is_storable(value):
        raise MalformedReply(
            f"{key!r} must be a non-empty string of at most {MAX_ID_LENGTH} characters, without NUL or surrogates"
        )
    return value


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    """A free-text value such as a decline reason: kept, with what no database can store escaped."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedReply(f"{key!r} must be a string or null")
    return escape_unstorable(value) or None


def parse_payment_reply(body: bytes) -> tuple[str, str | None, str | None]:
    """A 2xx reply to POST /payments → ("accepted", payment_id, None), ("declined", None, reason) or
    ("action_required", payment_id, None): then `parse_action` reads what the customer must do."""
    data = _reply_object(body)
    if data.get("status") == ACTION_REQUIRED:
        return ACTION_REQUIRED, _required_id(data, "payment_id"), None
    return _parse_submit_reply(body, "payment_id", "payment")


def parse_action(body: bytes) -> CustomerAction:
    """The `action` of an `action_required` answer or look-up (CONTRACT §11)."""
    action = _reply_object(body).get("action")
    if not isinstance(action, dict):
        raise MalformedReply("'action' must be an object")
    fields = action.get("fields") or {}
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise MalformedReply("'action.fields' must be an object of strings")
    for key in ("type", "url", "method", "code", "expires_at"):
        if action.get(key) is not None and not isinstance(action.get(key), str):
            raise MalformedReply(f"'action.{key}' must be a string")
    return customer_action(
        type_=action.get("type") or "",
        url=action.get("url"),
        method=action.get("method"),
        fields=list(fields.items()),
        code=action.get("code"),
        expires_at=action.get("expires_at"),
    )


def parse_lookup_reason(body: bytes) -> str | None:
    """A failed look-up's reason, when the gateway gives one (e.g. `cancelled`)."""
    return _optional_str(_reply_object(body), "reason")


def parse_refund_reply(body: bytes) -> tuple[str, str | None, str | None]:
    """A 2xx reply to POST /refunds → ("accepted", refund_id, None) or ("declined", None, reason)."""
    return _parse_submit_reply(body, "refund_id", "refund")


def _parse_submit_reply(body: bytes, id_key: str, what: str) -> tuple[str, str | None, str | None]:
    data = _reply_object(body)
    status = data.get("status")
    if status == "accepted":
        return "accepted", _required_id(data, id_key), None
    if status == "declined":
        return "declined", _optional_str(data, id_key), _optional_str(data, "reason")
    raise MalformedReply(f"unexpected {what} status {status!r}")


def parse_lookup_reply(body: bytes) -> tuple[LookupStatus, str]:
    """A 200 reply to GET /payments/{reference} → (status, payment_id)."""
    data = _reply_object(body)
    raw_status = data.get("status")
    status = _LOOKUP_STATUSES.get(raw_status) if isinstance(raw_status, str) else None
    if status is None:
        raise MalformedReply(f"unexpected lookup status {raw_status!r}")
    return status, _required_id(data, "payment_id")


def parse_refund_lookup_reply(body: bytes) -> tuple[RefundLookupStatus, str]:
    """A 200 reply to GET /refunds/{reference} → (status, refund_id)."""
    data = _reply_object(body)
    raw_status = data.get("status")
    status = _REFUND_LOOKUP_STATUSES.get(raw_status) if isinstance(raw_status, str) else None
    if status is None:
        raise MalformedReply(f"unexpected refund lookup status {raw_status!r}")
    return status, _required_id(data, "refund_id")


# --- callbacks ---------------------------------------------------------------------------


def parse_callback(body: bytes) -> CallbackNotification | RefundNotification:
    """A payment's `{"event_id", "payment_id", "reference", "status": "completed|failed", "reason"}`,
    or a refund's `{"event_id", "type": "refund", "refund_id", "reference", "status": "succeeded|failed", "reason"}`."""
    try:
        data = parse_object(body)
    except _InvalidJson as exc:
        raise CallbackParseError(str(exc)) from None
    if data.get("type") == REFUND_CALLBACK_TYPE:
        return _parse_refund_callback(data)
    return _parse_payment_callback(data)


def _parse_payment_callback(data: dict[str, Any]) -> CallbackNotification:
    status = data.get("status")
    if not isinstance(status, str) or status not in _CALLBACK_STATUSES:
        raise CallbackParseError("'status' must be 'completed' or 'failed'")
    payment_id = data.get("payment_id")
    if not isinstance(payment_id, str) or len(payment_id) > MAX_ID_LENGTH:
        raise CallbackParseError(f"'payment_id' must be a string of at most {MAX_ID_LENGTH} characters")
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise CallbackParseError("'reason' must be a string or null")
    return CallbackNotification(
        event_id=_callback_id(data, "event_id"),
        reference=_callback_id(data, "reference"),
        status=status,
        payment_id=payment_id or None,
        reason=reason or None,
    )


def _parse_refund_callback(data: dict[str, Any]) -> RefundNotification:
    status = data.get("status")
    if not isinstance(status, str) or status not in _REFUND_CALLBACK_STATUSES:
        raise CallbackParseError("a refund's 'status' must be 'succeeded' or 'failed'")
    refund_id = data.get("refund_id")
    if not isinstance(refund_id, str) or len(refund_id) > MAX_ID_LENGTH:
        raise CallbackParseError(f"'refund_id' must be a string of at most {MAX_ID_LENGTH} characters")
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise CallbackParseError("'reason' must be a string or null")
    return RefundNotification(
        event_id=_callback_id(data, "event_id"),
        refund_id=refund_id or None,
        reference=_callback_id(data, "reference"),
        status=status,
        reason=reason or None,
    )


def _callback_id(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise CallbackParseError(f"{key!r} must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    return value
