"""Refunds (CONTRACT §9): created under the deposit's row lock, processed at the deposit's gateway only.

This module owns a refund's status as `services` owns a transaction's: a change is checked by
`refund_transition` and written by `refund_save` with its event, in one database transaction.

Creating a refund locks the deposit's row, so concurrent requests queue there and the sum of
the refunds that have not failed never exceeds the deposit's amount. Processing follows the
payment pipeline's shape: a try is committed before its call and the call happens outside any
lock; the refund's id is the reference on every try, so a second send never refunds twice.
"Did not act" waits and tries the same gateway again with backoff (there is no other gateway
for a refund) until the deadline; an unknown outcome is looked up; a callback or a look-up
settles it; the recovery sweep covers refunds stuck in `pending` or `processing`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from core.currencies import ISO_4217, minor_units
from core.errors import ValidationFailed
from core.fingerprint import fingerprint, fingerprint_matches
from core.logs import bind, masked_reason
from gateways.adapters import get_adapter
from gateways.breaker import breaker_permit, breaker_record_fault, breaker_record_success
from gateways.metrics import GATEWAY_LATENCY
from gateways.models import Gateway
from gateways.selectors import gateway_credentials, gateway_get
from gateways.types import Outcome, RefundLookupResult, RefundLookupStatus, RefundRequest, RefundResult

from .errors import AmountExceedsRefundable, IdempotencyConflict, InvalidRefundAmount, NotRefundable
from .metrics import REFUNDS_FINISHED
from .models import (
    REFUND_ATTEMPT_RESULT_FIELDS,
    REFUND_PIPELINE_FIELDS,
    REFUND_TRANSITIONS,
    ApiClient,
    AttemptOutcome,
    EventType,
    Refund,
    RefundAttempt,
    RefundFailureReason,
    RefundStatus,
    TransactionStatus,
    TransactionType,
)
from .money import AmountError, format_amount, parse_amount
from .representations import refund_representation
from .services import InvalidTransition, event_append, transaction_lock

logger = logging.getLogger(__name__)

PROCESS_REFUND_TASK = "payments.process_refund"
RECONCILE_REFUND_TASK = "payments.reconcile_refund"
_MAX_STEPS = 10
_MOST_PRECISE_CURRENCY = max(sorted(ISO_4217), key=minor_units)
_CALL_GRACE_SECONDS = 5.0

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
    try:
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
                request_hash=fingerprint(canonical),
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
    except IntegrityError:
        if idempotency_key is None:
            raise
        replay = _replay(client=client, idempotency_key=idempotency_key, canonical=canonical)
        if replay is None:
            raise
        return replay
    bind(refund=str(refund.pk), transaction_id=str(txn.pk))
    logger.info("refund created", extra={"amount": format_amount(value, txn.currency)})
    return RefundCreated(refund=refund, replayed=False)


def refund_publish(refund_id: Any, *, countdown: float | None = None, task_name: str = PROCESS_REFUND_TASK) -> None:
    """Queue a refund's processing; a failed publish is logged, and the sweep republishes."""
    try:
        task = current_app.tasks[task_name]
        if countdown is None:
            task.apply_async(args=(str(refund_id),))
        else:
            task.apply_async(args=(str(refund_id),), countdown=countdown)
    except Exception:
        logger.exception("could not publish a refund; the sweep will", extra={"refund": str(refund_id)})


# --- the state owner ---------------------------------------------------------------------------

_STATUS_AT_LOCK = "_paygate_status_at_lock"


def refund_lock(refund_id: Any) -> Refund:
    refund = Refund.objects.select_for_update(of=("self",)).select_related("transaction").get(pk=refund_id)
    gateway = gateway_get(refund.gateway_id)
    if gateway is not None:
        refund.gateway = gateway
    setattr(refund, _STATUS_AT_LOCK, refund.status)
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
    at_lock = getattr(refund, _STATUS_AT_LOCK, None)
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
    setattr(refund, _STATUS_AT_LOCK, refund.status)


# --- processing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    attempt_pk: int
    attempt_created_at: datetime
    gateway: Gateway
    request: RefundRequest


@dataclass(frozen=True, slots=True)
class _Lookup:
    gateway: Gateway


@dataclass(frozen=True, slots=True)
class RefundRetry:
    countdown: float


def _call_window(gateway: Gateway) -> float:
    return gateway.connect_timeout + gateway.read_timeout + _CALL_GRACE_SECONDS


def _backoff(round_: int) -> float:
    base = settings.PAYGATE_RETRY_BACKOFF_BASE_SECONDS
    return min(base * (2.0 ** max(round_ - 1, 0)), settings.PAYGATE_RETRY_BACKOFF_MAX_SECONDS)


def _last_attempt(refund: Refund) -> RefundAttempt | None:
    return RefundAttempt.objects.filter(refund_id=refund.pk).order_by("-number").first()


def _callback_url(gateway: Gateway) -> str:
    return f"{settings.PAYGATE_PUBLIC_URL}/api/v1/callbacks/{gateway.code}"


def _wait(refund: Refund, now: datetime) -> RefundRetry:
    """The gateway did not act (or its breaker is open): same gateway again, later; expire past the deadline."""
    deadline = refund.created_at + timedelta(seconds=settings.PAYGATE_NO_GATEWAY_DEADLINE_SECONDS)
    if now >= deadline:
        refund_transition(refund, to=RefundStatus.FAILED, failure_reason=RefundFailureReason.EXPIRED)
        refund_save(refund)
        return RefundRetry(countdown=-1)
    refund.retry_round += 1
    countdown = min(_backoff(refund.retry_round), max((deadline - now).total_seconds(), 0.0))
    refund.next_check_at = now + timedelta(seconds=countdown + settings.PAYGATE_SWEEP_GRACE_SECONDS)
    refund_save(refund, fields=["retry_round", "next_check_at", "updated_at"])
    return RefundRetry(countdown=countdown)


def _next_step(refund_id: str) -> _Call | _Lookup | RefundRetry | None:
    with transaction.atomic():
        refund = refund_lock(refund_id)
        if refund.status != RefundStatus.PENDING:
            return None
        now = timezone.now()
        last = _last_attempt(refund)
        if last is not None and last.outcome == AttemptOutcome.PENDING:
            age = (now - last.created_at).total_seconds()
            if age < _call_window(refund.gateway):
                return RefundRetry(countdown=_call_window(refund.gateway) - age)
            last.outcome = AttemptOutcome.UNKNOWN
            last.error = "interrupted"
            last.save(update_fields=["outcome", "error", "updated_at"])
            return _Lookup(gateway=refund.gateway)
        if last is not None and last.outcome == AttemptOutcome.UNKNOWN:
            return _Lookup(gateway=refund.gateway)
        if not refund.gateway.is_active or breaker_permit(refund.gateway_id) is None:
            retry = _wait(refund, now)
            return None if retry.countdown < 0 else retry
        attempt = RefundAttempt.objects.create(refund=refund, number=(last.number + 1) if last else 1)
        refund.next_check_at = now + timedelta(
            seconds=_call_window(refund.gateway) + settings.PAYGATE_SWEEP_GRACE_SECONDS
        )
        refund_save(refund, fields=["next_check_at", "updated_at"])
        return _Call(
            attempt_pk=attempt.pk,
            attempt_created_at=attempt.created_at,
            gateway=refund.gateway,
            request=RefundRequest(
                reference=str(refund.pk),
                payment_id=refund.transaction.gateway_reference,
                amount=Decimal(format_amount(refund.amount, refund.currency)),
                currency=refund.currency,
                callback_url=_callback_url(refund.gateway),
            ),
        )


def _accepted(refund: Refund, refund_id_at_gateway: str | None) -> None:
    if refund_id_at_gateway:
        refund.gateway_refund_id = refund_id_at_gateway[:255]
    if refund.status == RefundStatus.PENDING:
        refund_transition(refund, to=RefundStatus.PROCESSING)
    refund.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_FIRST_DELAY_SECONDS)


def _record_call(refund_id: str, step: _Call, result: RefundResult) -> _Lookup | RefundRetry | None:
    with transaction.atomic():
        refund = refund_lock(refund_id)
        attempt = RefundAttempt.objects.get(pk=step.attempt_pk)
        attempt.latency_ms = result.latency_ms
        attempt.http_status = result.http_status
        open_ = refund.status == RefundStatus.PENDING and attempt.number == (_last_attempt(refund) or attempt).number
        following: _Lookup | RefundRetry | None = None
        if result.outcome == Outcome.ACCEPTED:
            attempt.outcome = AttemptOutcome.ACCEPTED
            if open_:
                _accepted(refund, result.refund_id)
        elif result.outcome == Outcome.DECLINED:
            attempt.outcome = AttemptOutcome.DECLINED
            attempt.error = masked_reason(result.reason, default="declined")
            if open_:
                refund_transition(refund, to=RefundStatus.FAILED, failure_reason=RefundFailureReason.DECLINED)
        elif result.outcome == Outcome.NOT_SUBMITTED:
            attempt.outcome = AttemptOutcome.ERROR
            attempt.error = (result.error or "not_submitted")[:100]
        else:
            attempt.outcome = AttemptOutcome.UNKNOWN
            attempt.error = (result.error or "unknown")[:100]
            following = _Lookup(gateway=step.gateway) if open_ else None
        attempt.save(update_fields=REFUND_ATTEMPT_RESULT_FIELDS)
        if result.outcome == Outcome.NOT_SUBMITTED and open_:
            retry = _wait(refund, timezone.now())
            following = None if retry.countdown < 0 else retry
        else:
            refund_save(refund)
    if result.latency_ms is not None:
        GATEWAY_LATENCY.labels(gateway=step.gateway.code, operation="refund").observe(result.latency_ms / 1000)
    if result.outcome in (Outcome.NOT_SUBMITTED, Outcome.UNKNOWN):
        breaker_record_fault(step.gateway.pk)
    else:
        breaker_record_success(step.gateway.pk)
    return following


def _record_lookup(
    refund_id: str, result: RefundLookupResult, *, expire_if_unresolved: bool
) -> _Call | RefundRetry | None:
    """Apply a look-up of the refund's reference; answer whether it must be sent (again) or waited for."""
    with transaction.atomic():
        refund = refund_lock(refund_id)
        if refund.is_final:
            return None
        refund.lookup_count += 1
        last = _last_attempt(refund)
        following: _Call | RefundRetry | None = None
        status = result.status
        if status == RefundLookupStatus.NOT_FOUND:
            # Never received: sending again with the same reference is safe.
            if last is not None and last.outcome in (AttemptOutcome.UNKNOWN, AttemptOutcome.PENDING):
                last.outcome = AttemptOutcome.ERROR
                last.error = f"{last.error or 'unknown'}; not_received"[:100]
                last.save(update_fields=["outcome", "error", "updated_at"])
            if refund.status == RefundStatus.PENDING:
                refund.next_check_at = timezone.now()
                following = RefundRetry(countdown=0)
            else:
                # It accepted this refund once and now does not know it: a person should look.
                refund.needs_review = True
                refund.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_INTERVAL_SECONDS)
        elif status == RefundLookupStatus.ACCEPTED:
            if last is not None and last.outcome != AttemptOutcome.ACCEPTED:
                last.outcome = AttemptOutcome.ACCEPTED
                last.save(update_fields=["outcome", "updated_at"])
            _accepted(refund, result.refund_id)
            if refund.status == RefundStatus.PROCESSING and expire_if_unresolved:
                refund.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_INTERVAL_SECONDS)
        elif status == RefundLookupStatus.SUCCEEDED:
            if result.refund_id:
                refund.gateway_refund_id = result.refund_id[:255]
            refund_transition(refund, to=RefundStatus.SUCCEEDED)
        elif status == RefundLookupStatus.FAILED:
            refund_transition(refund, to=RefundStatus.FAILED, failure_reason=RefundFailureReason.GATEWAY_FAILED)
        else:  # the look-up itself failed
            if refund.status == RefundStatus.PENDING:
                # Keep it waiting on the look-up; the sweep brings it back.
                refund_transition(refund, to=RefundStatus.PROCESSING)
            deadline = refund.created_at + timedelta(seconds=settings.PAYGATE_PROCESSING_DEADLINE_SECONDS)
            if expire_if_unresolved and timezone.now() >= deadline and not refund.needs_review:
                # The gateway may have accepted it, so it never fails by our clock alone: failing
                # would free its amount for another refund and invite the merchant to retry, and
                # both could be paid. It stays `processing`, still counted against the deposit
                # and still looked up, for its callback, a look-up or an operator to settle.
                refund.needs_review = True
                logger.warning("refund unresolved past the deadline; kept processing for review")
            refund.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_INTERVAL_SECONDS)
        refund_save(refund)
    return following


def _send(step: _Call) -> RefundResult:
    late = (timezone.now() - step.attempt_created_at).total_seconds() > _CALL_GRACE_SECONDS
    if late:
        return RefundResult(outcome=Outcome.NOT_SUBMITTED, error="not_sent_in_time")
    return get_adapter(step.gateway.data_format, gateway_credentials(step.gateway)).create_refund(step.request)


def _lookup(refund_id: str, gateway: Gateway) -> RefundLookupResult:
    result = get_adapter(gateway.data_format, gateway_credentials(gateway)).lookup_refund(refund_id)
    if result.latency_ms is not None:
        GATEWAY_LATENCY.labels(gateway=gateway.code, operation="refund_lookup").observe(result.latency_ms / 1000)
    return result


def refund_process(*, refund_id: str) -> RefundRetry | None:
    """Drive a pending refund as far as it can go now; return a delay if it must wait."""
    bind(refund=refund_id)
    for _ in range(_MAX_STEPS):
        step: Any = _next_step(refund_id)
        while isinstance(step, (_Call, _Lookup)):
            if isinstance(step, _Call):
                step = _record_call(refund_id, step, _send(step))
            else:
                step = _record_lookup(refund_id, _lookup(refund_id, step.gateway), expire_if_unresolved=False)
        if step is None:
            return None
        if isinstance(step, RefundRetry) and step.countdown > 0:
            return step
    return RefundRetry(countdown=_backoff(1))


def refund_reconcile(*, refund_id: str) -> RefundRetry | None:
    """Look up a `processing` refund at its gateway; expire it past the deadline."""
    bind(refund=refund_id)
    with transaction.atomic():
        refund = refund_lock(refund_id)
        if refund.status != RefundStatus.PROCESSING:
            return None
        refund.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_INTERVAL_SECONDS)
        refund_save(refund, fields=["next_check_at", "updated_at"])
        gateway = refund.gateway
    _record_lookup(refund_id, _lookup(refund_id, gateway), expire_if_unresolved=True)
    return None


# --- callbacks ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundSettlement:
    result: str  # "applied" | "ignored" | "flagged"
    flag_reason: str = ""
    transaction_id: uuid.UUID | None = None
    refund_id: uuid.UUID | None = None


def refund_settle_from_callback(*, reference: str, gateway_id: int, status: str, refund_id: str) -> RefundSettlement:
    """Apply a gateway's signed final word on a refund, inside the caller's atomic block."""
    try:
        pk = uuid.UUID(reference)
    except ValueError:
        return RefundSettlement("flagged", "unknown_reference")
    if not Refund.objects.filter(pk=pk).exists():
        return RefundSettlement("flagged", "unknown_reference")
    refund = refund_lock(pk)
    bind(refund=str(refund.pk))
    ids: dict[str, Any] = {"transaction_id": refund.transaction_id, "refund_id": refund.pk}
    if refund.gateway_id != gateway_id:
        return RefundSettlement("flagged", "gateway_mismatch", **ids)
    if refund.gateway_refund_id and refund_id and refund_id != refund.gateway_refund_id:
        return RefundSettlement("flagged", "refund_id_mismatch", **ids)
    target = RefundStatus.SUCCEEDED if status == "succeeded" else RefundStatus.FAILED
    if refund.is_final:
        if refund.status == target and (
            target == RefundStatus.SUCCEEDED or refund.failure_reason == RefundFailureReason.GATEWAY_FAILED
        ):
            return RefundSettlement("ignored", **ids)
        return RefundSettlement("flagged", "final_state_conflict", **ids)
    if refund_id:
        refund.gateway_refund_id = refund_id[:255]
    last = _last_attempt(refund)
    if last is not None and last.outcome != AttemptOutcome.ACCEPTED:
        last.outcome = AttemptOutcome.ACCEPTED
        last.save(update_fields=["outcome", "updated_at"])
    refund_transition(
        refund,
        to=target,
        failure_reason=RefundFailureReason.GATEWAY_FAILED if target == RefundStatus.FAILED else None,
    )
    refund_save(refund)
    return RefundSettlement("applied", **ids)
