"""Gateway callbacks: verify, store first, then apply under the transaction's row lock."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.db import single_statement
from core.errors import NotFound, ValidationFailed
from core.logs import bind
from core.signing import SignatureError, verify_signature
from core.text import escape_unstorable, is_storable
from gateways.adapters import ADAPTERS
from gateways.models import Gateway
from gateways.selectors import gateway_by_code, gateway_get
from gateways.types import CallbackParseError, RefundNotification
from payments.settlement import SettlementResult, refund_settle_from_callback, transaction_settle_from_callback

from .errors import InvalidSignature
from .metrics import CALLBACKS
from .models import CallbackEvent

logger = logging.getLogger(__name__)

# Only these request headers are kept with the event: enough to audit, nothing secret.
_KEPT_HEADERS = ("Content-Type", "User-Agent", "X-Signature", "X-Request-Id")


@dataclass(frozen=True, slots=True)
class ReceiveResult:
    event: CallbackEvent
    duplicate: bool


def callback_receive(*, gateway_code: str, body: bytes, headers: Mapping[str, str]) -> ReceiveResult:
    """Check the signature and store the event, committed; nothing more before the answer.

    The caller applies it once the gateway has its answer (`callback_apply_after_answer`);
    an event that is never applied (the process died first) is found by the sweep.
    """
    gateway = gateway_by_code(gateway_code)
    if gateway is None:
        raise NotFound(f"Unknown gateway {gateway_code!r}.")
    bind(gateway=gateway.code)
    try:
        matched, signature_ts = verify_signature(
            header=headers.get("X-Signature"),
            body=body,
            secrets=[gateway.callback_secret, gateway.previous_callback_secret],
            tolerance=settings.PAYGATE_CALLBACK_TOLERANCE_SECONDS,
        )
    except SignatureError as exc:
        CALLBACKS.labels(gateway=gateway.code, result="rejected").inc()
        logger.warning("callback refused: %s", exc.code)
        raise InvalidSignature(exc.message, code=exc.code) from None
    signature = CallbackEvent.Signature.CURRENT if matched == 0 else CallbackEvent.Signature.PREVIOUS
    try:
        notification = ADAPTERS[gateway.data_format].parse_callback(body)
    except CallbackParseError as exc:
        # Signed, so it is the gateway's word: kept as evidence, then refused.
        CALLBACKS.labels(gateway=gateway.code, result="rejected").inc()
        _store(
            gateway=gateway,
            fields={"event_id": _digest_id(body)},
            flag="malformed_callback",
            body=body,
            headers=headers,
            signature=signature,
            signature_ts=signature_ts,
        )
        raise ValidationFailed(f"Malformed callback body: {exc}", code="malformed_callback") from None

    bind(attempt=escape_unstorable(notification.reference))
    is_refund = isinstance(notification, RefundNotification)
    # For a refund's callback the gateway's id is its refund's: kept in the same column.
    gateway_id = notification.refund_id if isinstance(notification, RefundNotification) else notification.payment_id
    fields = {
        "event_id": notification.event_id,
        "reference": notification.reference,
        "status": notification.status,
        "payment_id": gateway_id or "",
        "reason": notification.reason or "",
    }
    flag = None
    if not all(is_storable(value) for value in fields.values()):
        # Text the database cannot hold (NUL, a lone surrogate): stored escaped, never applied.
        flag = "unstorable_text"
        if not is_storable(notification.event_id):
            fields["event_id"] = _digest_id(notification.event_id.encode("utf-8", "surrogatepass"))
        fields = {name: escape_unstorable(value) for name, value in fields.items()}
    fields["reason"] = fields["reason"][:255]
    return _store(
        gateway=gateway,
        fields={**fields, "kind": CallbackEvent.Kind.REFUND if is_refund else CallbackEvent.Kind.PAYMENT},
        flag=flag,
        body=body,
        headers=headers,
        signature=signature,
        signature_ts=signature_ts,
    )


def _digest_id(data: bytes) -> str:
    """A stable event id for a callback whose own cannot be stored: its gateway's retries still collide.

    Unkeyed on purpose: it hashes a gateway's notification, which holds no card or bank data.
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _store(
    *,
    gateway: Gateway,
    fields: dict[str, str],
    flag: str | None,
    body: bytes,
    headers: Mapping[str, str],
    signature: str,
    signature_ts: int,
) -> ReceiveResult:
    """Insert the event, committed; a second delivery of the same event id returns the first."""
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    raw_text = text if text is not None and is_storable(text) else None
    now = timezone.now()
    try:
        with single_statement():
            event = CallbackEvent.objects.create(
                gateway=gateway,
                **fields,
                raw_body=raw_text if raw_text is not None else base64.b64encode(body).decode("ascii"),
                raw_body_base64=raw_text is None,
                headers={name: escape_unstorable(headers[name]) for name in _KEPT_HEADERS if name in headers},
                signature=signature,
                signature_timestamp=signature_ts,
                result=CallbackEvent.Result.FLAGGED if flag else CallbackEvent.Result.RECEIVED,
                flagged=flag is not None,
                flag_reason=flag or "",
                processed_at=now if flag else None,
                next_check_at=None if flag else now + timedelta(seconds=settings.PAYGATE_SWEEP_GRACE_SECONDS),
            )
    except IntegrityError:
        existing = CallbackEvent.objects.get(gateway=gateway, event_id=fields["event_id"])
        CALLBACKS.labels(gateway=gateway.code, result="duplicate").inc()
        logger.info("duplicate callback absorbed", extra={"event_id": existing.event_id})
        return ReceiveResult(event=existing, duplicate=True)
    if flag:
        CALLBACKS.labels(gateway=gateway.code, result=CallbackEvent.Result.FLAGGED).inc()
        logger.warning("callback flagged for review: %s", flag, extra={"event_id": event.event_id})
    else:
        logger.info("callback stored", extra={"event_id": event.event_id})
    return ReceiveResult(event=event, duplicate=False)


def _apply(event: CallbackEvent) -> None:
    """Hand the event's facts to payments, which owns transactions' and refunds' states; keep what came of it."""
    if event.kind == CallbackEvent.Kind.REFUND:
        settlement = refund_settle_from_callback(
            reference=event.reference, gateway_id=event.gateway_id, status=event.status, refund_id=event.payment_id
        )
    else:
        settlement = transaction_settle_from_callback(
            reference=event.reference,
            gateway_id=event.gateway_id,
            status=event.status,
            payment_id=event.payment_id,
            reason=event.reason or None,
        )
    event.transaction_id, event.attempt_id, event.refund_id = (
        settlement.transaction_id,
        settlement.attempt_id,
        settlement.refund_id,
    )
    event.result = settlement.result
    event.flagged = settlement.result == SettlementResult.FLAGGED
    event.flag_reason = settlement.flag_reason


def callback_apply(*, event_pk: int, event: CallbackEvent | None = None) -> None:
    """Apply a stored event once; `event`, if given, is that row as this process just stored it.

    Appliers of events for one transaction queue on its row lock. The event itself leaves
    `received` by a compare-and-set as the last write: an applier that finds it gone (a
    worker and the web process both tried) rolls back what it did and changes nothing.
    """
    with transaction.atomic():
        if event is None:
            event = CallbackEvent.objects.filter(pk=event_pk).first()
            if event is None or event.result != CallbackEvent.Result.RECEIVED:
                return
            event.gateway = gateway_get(event.gateway_id) or event.gateway
        bind(gateway=event.gateway.code, attempt=event.reference)
        _apply(event)
        event.processed_at = timezone.now()
        claimed = CallbackEvent.objects.filter(pk=event.pk, result=CallbackEvent.Result.RECEIVED).update(
            result=event.result,
            flagged=event.flagged,
            flag_reason=event.flag_reason,
            attempt_id=event.attempt_id,
            refund_id=event.refund_id,
            transaction_id=event.transaction_id,
            processed_at=event.processed_at,
        )
        if not claimed:
            transaction.set_rollback(True)
            logger.info("callback already applied elsewhere", extra={"event_id": event.event_id})
            return
    CALLBACKS.labels(gateway=event.gateway.code, result=event.result).inc()
    if event.flagged:
        logger.warning("callback flagged for review: %s", event.flag_reason, extra={"event_id": event.event_id})
    else:
        logger.info("callback %s", event.result, extra={"event_id": event.event_id})


def callback_apply_after_answer(*, event: CallbackEvent) -> None:
    """Apply an event this process just stored, once its 200 has gone out; never raises.

    This spares the event a trip through the queue, and a read of the row. If it fails (the
    database is away, say) the event stays `received` and `callbacks.sweep_unapplied` applies
    it on a worker.
    """
    try:
        callback_apply(event_pk=event.pk, event=event)
    except Exception:
        logger.exception("callback not applied after the answer; the sweep will apply it", extra={"event_pk": event.pk})
