"""Writes of refunds (CONTRACT §9): creating them (with idempotency) and moving them through their states.

This module owns a refund's status as `services` owns a transaction's: a change happens only
on a row locked by `refund_lock`, is checked by `refund_transition` and written by `refund_save`
with its event, in one database transaction. Processing is `refunds.processing`; callbacks settle
a refund through `settlement`.

Creating a refund locks the deposit's row, so concurrent requests queue there and the sum of
the refunds that have not failed never exceeds the deposit's amount.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from core.currencies import ISO_4217, minor_units
from core.errors import ValidationFailed
from core.fingerprint import fingerprint, fingerprint_matches
from core.logs import bind
from gateways.selectors import gateway_get

from ..errors import AmountExceedsRefundable, IdempotencyConflict, InvalidRefundAmount, NotRefundable
from ..metrics import REFUNDS_FINISHED
from ..models import (
    REFUND_PIPELINE_FIELDS,
    REFUND_TRANSITIONS,
    ApiClient,
    EventType,
    Refund,
    RefundFailureReason,
    RefundStatus,
    TransactionStatus,
    TransactionType,
)
from ..money import AmountError, format_amount, parse_amount
from ..pipeline import STATUS_AT_LOCK, insert_or_replay, status_lock_note, task_publish
from ..representations import refund_representation
from ..services import InvalidTransition, event_append, transaction_lock

logger = logging.getLogger(__name__)

PROCESS_REFUND_TASK = "payments.process_refund"
RECONCILE_REFUND_TASK = "payments.reconcile_refund"
_MOST_PRECISE_CURRENCY = max(sorted(ISO_4217), key=minor_units)

_EVENT_OF_STATUS = {
    RefundStatus.SUCCEEDED: EventType.REFUND_SUCCEEDED,
    RefundStatus.FAILED: EventType.REFUND_FAILED,
}


# --- creation ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundCreated:
    refund: Refund
    replayed: bool


def _canonical(transaction_id: Any, amount: Any, reason: str) -> bytes:
    """The request as the idempotency fingerprint sees it: "10.0" and 10.00 are the same amount."""
    amount_text: str | None = None if amount is None else str(amount).strip()
    if amount_text is not None:
        # Not an amount: validation refuses it; the fingerprint keeps the text.
        with contextlib.suppress(InvalidOperation):
            amount_text = format(Decimal(amount_text).normalize(), "f")
    body = {"transaction_id": str(transaction_id), "amount": amount_text, "reason": reason}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _replay(*, client: ApiClient, idempotency_key: str, canonical: bytes) -> RefundCreated | None:
    existing = Refund.objects.select_related("gateway").filter(client=client, idempotency_key=idempotency_key).first()
    if existing is None:
        return None
    if not fingerprint_matches(canonical, existing.request_hash):
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request.",
            fields={"idempotency_key": idempotency_key},
        )
    return RefundCreated(refund=existing, replayed=True)


def refund_create(
    *,
    client: ApiClient,
    transaction_id: Any,
    amount: Any = None,
    reason: str = "",
    idempotency_key: str | None = None,
) -> RefundCreated:
    """Store a refund as `pending` and queue it; `amount` None means what remains refundable.

    The deposit's row lock serialises concurrent refunds of it: the check of what remains and
    the INSERT happen under it, so the refunds that have not failed never add up to more than
    the deposit. `amount` is the raw value from the request (checked here against the currency).
    """
    if amount is not None:
        try:  # the amount's own form first, by the rules of the currency with the most decimals
            parse_amount(amount, currency=_MOST_PRECISE_CURRENCY, maximum=Decimal(settings.PAYGATE_MAX_AMOUNT))
        except AmountError as exc:
            raise ValidationFailed(str(exc), fields={"amount": [str(exc)]}) from None
    canonical = _canonical(transaction_id, amount, reason)
    if idempotency_key is not None:
        replay = _replay(client=client, idempotency_key=idempotency_key, canonical=canonical)
        if replay is not None:
            return replay
    return insert_or_replay(
        lambda: _insert(
            client=client,
            transaction_id=transaction_id,
            amount=amount,
            reason=reason,
            idempotency_key=idempotency_key,
            request_hash=fingerprint(canonical),
        ),
        idempotency_key=idempotency_key,
        replay=lambda key: _replay(client=client, idempotency_key=key, canonical=canonical),
    )


def _insert(
    *,
    client: ApiClient,
    transaction_id: Any,
    amount: Any,
    reason: str,
    idempotency_key: str | None,
    request_hash: str,
) -> RefundCreated:
    """Under the deposit's row lock: check what remains refundable, store the refund and its event."""
    with transaction.atomic():
        txn = transaction_lock(transaction_id)
        if txn.client_id != client.pk:
            raise NotRefundable("No such transaction.")  # the view checked ownership; never reached
        if txn.type != TransactionType.DEPOSIT or txn.status != TransactionStatus.COMPLETED:
            raise NotRefundable(
                f"Only a completed deposit can be refunded; this is a {txn.status} {txn.type}.",
                fields={"transaction_id": str(txn.pk), "status": txn.status, "type": txn.type},
            )
        committed = (
            Refund.objects.filter(transaction=txn)
            .exclude(status=RefundStatus.FAILED)
            .aggregate(total=Sum("amount"))["total"]
        ) or Decimal(0)
        remaining = txn.amount - committed
        if amount is None:
            value = remaining
        else:
            try:
                value = parse_amount(amount, currency=txn.currency, maximum=Decimal(settings.PAYGATE_MAX_AMOUNT))
            except AmountError as exc:
                # Well formed (checked above), but too precise for the deposit's currency, which the
                # request does not name: the request is understood, the deposit refuses it.
                raise InvalidRefundAmount(str(exc), fields={"amount": [str(exc)]}) from None
        if value <= 0 or value > remaining:
            raise AmountExceedsRefundable(
                f"At most {format_amount(remaining, txn.currency)} {txn.currency} of this deposit can be refunded.",
                fields={
                    "amount": format_amount(value, txn.currency),
                    "refundable": format_amount(remaining, txn.currency),
                },
            )
        if txn.gateway_id is None:
            raise NotRefundable("The deposit has no gateway to refund through.")
        refund = Refund.objects.create(
            client=client,
            transaction=txn,
            gateway_id=txn.gateway_id,
            amount=value,
            currency=txn.currency,
            reason=reason,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            next_check_at=timezone.now() + timedelta(seconds=settings.PAYGATE_SWEEP_GRACE_SECONDS),
        )
        refund.gateway = gateway_get(txn.gateway_id) or refund.gateway
        event_append(
            client_id=client.pk,
            type=EventType.REFUND_CREATED,
            transaction=txn,
            refund=refund,
            obj=refund_representation(refund),
        )
        refund_id = refund.pk
        transaction.on_commit(lambda: refund_publish(refund_id), robust=True)
    bind(refund=str(refund.pk), transaction_id=str(txn.pk))
    logger.info("refund created", extra={"amount": format_amount(value, txn.currency)})
    return RefundCreated(refund=refund, replayed=False)


def refund_publish(refund_id: Any, *, countdown: float | None = None, task_name: str = PROCESS_REFUND_TASK) -> None:
    """Queue a refund's processing; a failed publish is logged, and the sweep republishes."""
    task_publish(
        task_name,
        refund_id,
        countdown=countdown,
        log=logger,
        failure="could not publish a refund; the sweep will",
        key="refund",
    )


# --- the state owner ---------------------------------------------------------------------------


def refund_lock(refund_id: Any) -> Refund:
    """The refund, its row locked until the end of the atomic block, with its deposit and gateway."""
    refund = Refund.objects.select_for_update(of=("self",)).select_related("transaction").get(pk=refund_id)
    gateway = gateway_get(refund.gateway_id)
    if gateway is not None:
        refund.gateway = gateway
    status_lock_note(refund)
    return refund


def refund_transition(refund: Refund, *, to: str, failure_reason: str | None = None) -> None:
    """Move a refund locked by `refund_lock` to `to` in memory; `refund_save` writes it with its event."""
    if to not in REFUND_TRANSITIONS[refund.status]:
        raise InvalidTransition(f"A {refund.status} refund cannot become {to}.")
    if to == RefundStatus.FAILED and failure_reason not in RefundFailureReason.values:
        raise InvalidTransition("A failed refund needs a failure reason.")
    logger.info("refund %s -> %s%s", refund.status, to, f" ({failure_reason})" if failure_reason else "")
    refund.status = to
    refund.failure_reason = failure_reason if to == RefundStatus.FAILED else None
    if to in (RefundStatus.SUCCEEDED, RefundStatus.FAILED):
        refund.finished_at = timezone.now()
        refund.next_check_at = None
        gateway_code = refund.gateway.code
        transaction.on_commit(
            lambda: REFUNDS_FINISHED.labels(gateway=gateway_code, status=to, failure_reason=failure_reason or "").inc()
        )


def refund_save(refund: Refund, *, fields: tuple[str, ...] | list[str] = REFUND_PIPELINE_FIELDS) -> None:
    """Write a locked refund; a change to a final status appends its event (`refund.succeeded|failed`)."""
    at_lock = getattr(refund, STATUS_AT_LOCK, None)
    if at_lock is None:
        raise RuntimeError("refund_save needs a row locked by refund_lock.")
    changed = refund.status != at_lock
    if changed and "status" not in fields:
        raise RuntimeError("A status change must be saved with its status column.")
    refund.save(update_fields=fields)
    if changed and refund.status in _EVENT_OF_STATUS:
        event_append(
            client_id=refund.client_id,
            type=_EVENT_OF_STATUS[RefundStatus(refund.status)],
            transaction=refund.transaction,
            refund=refund,
            obj=refund_representation(refund),
        )
    status_lock_note(refund)
