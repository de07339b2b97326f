"""The refund pipeline (CONTRACT §9): send a pending refund to the deposit's gateway and apply the refund rules.

The same shape as the payment pipeline (`processing`), over the parts they share (`pipeline`):
a try is committed before its call and the call happens outside any lock; the refund's id is
the reference on every try, so a second send never refunds twice. What follows a call or a
look-up is decided by the refund table in `failover.py`: "did not act" waits and tries the same
gateway again with backoff (there is no other gateway for a refund) until the deadline, an
unknown outcome is looked up, and a callback (`settlement`) or a look-up settles it. The
recovery sweep covers refunds stuck in `pending` or `processing`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.logs import bind, masked_reason
from gateways.adapters import get_adapter
from gateways.breaker import breaker_permit, breaker_record_fault, breaker_record_success
from gateways.metrics import GATEWAY_LATENCY
from gateways.models import Gateway
from gateways.selectors import gateway_credentials
from gateways.types import Outcome, RefundLookupResult, RefundRequest, RefundResult

from ..failover import RefundNextStep, refund_failover_next, refund_failover_wait
from ..models import (
    REFUND_ATTEMPT_RESULT_FIELDS,
    AttemptOutcome,
    Refund,
    RefundAttempt,
    RefundFailureReason,
    RefundStatus,
)
from ..money import format_amount
from ..pipeline import NOT_SENT_IN_TIME, Continue, Done, RetryLater, backoff, call_window, callback_url, sent_too_late
from .services import refund_lock, refund_save, refund_transition

logger = logging.getLogger(__name__)

# A run never loops forever, even against a misbehaving gateway.
_MAX_STEPS = 10


@dataclass(frozen=True, slots=True)
class _Call:
    attempt_pk: int
    attempt_created_at: datetime
    gateway: Gateway
    request: RefundRequest


@dataclass(frozen=True, slots=True)
class _Lookup:
    gateway: Gateway


_Step = Done | RetryLater | Continue | _Call | _Lookup


def refund_attempt_last(refund: Refund) -> RefundAttempt | None:
    """The refund's latest try at its gateway, if any."""
    return RefundAttempt.objects.filter(refund_id=refund.pk).order_by("-number").first()


def _wait(refund: Refund, now: datetime) -> Done | RetryLater:
    """The gateway did not act (or its breaker is open): the same gateway again, later; expired past the deadline."""
    deadline = refund.created_at + timedelta(seconds=settings.PAYGATE_NO_GATEWAY_DEADLINE_SECONDS)
    if refund_failover_wait(past_deadline=now >= deadline) == RefundNextStep.EXPIRE:
        refund_transition(refund, to=RefundStatus.FAILED, failure_reason=RefundFailureReason.EXPIRED)
        refund_save(refund)
        return Done()
    refund.retry_round += 1
    countdown = min(backoff(refund.retry_round), max((deadline - now).total_seconds(), 0.0))
    refund.next_check_at = now + timedelta(seconds=countdown + settings.PAYGATE_SWEEP_GRACE_SECONDS)
    refund_save(refund, fields=["retry_round", "next_check_at", "updated_at"])
    return RetryLater(countdown=countdown)


def _next_step(refund_id: str) -> _Step:
    """Decide, under the row lock, what the refund needs next; commit a new try if a call."""
    with transaction.atomic():
        refund = refund_lock(refund_id)
        if refund.status != RefundStatus.PENDING:
            return Done()
        now = timezone.now()
        last = refund_attempt_last(refund)
        if last is not None and last.outcome == AttemptOutcome.PENDING:
            age = (now - last.created_at).total_seconds()
            if age < call_window(refund.gateway):
                return RetryLater(countdown=call_window(refund.gateway) - age)
            last.outcome = AttemptOutcome.UNKNOWN
            last.error = "interrupted"
            last.save(update_fields=["outcome", "error", "updated_at"])
            return _Lookup(gateway=refund.gateway)
        if last is not None and last.outcome == AttemptOutcome.UNKNOWN:
            return _Lookup(gateway=refund.gateway)
        if not refund.gateway.is_active or breaker_permit(refund.gateway_id) is None:
            return _wait(refund, now)
        attempt = RefundAttempt.objects.create(refund=refund, number=(last.number + 1) if last else 1)
        refund.next_check_at = now + timedelta(
            seconds=call_window(refund.gateway) + settings.PAYGATE_SWEEP_GRACE_SECONDS
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
                callback_url=callback_url(refund.gateway),
            ),
        )


def _accepted(refund: Refund, refund_id_at_gateway: str | None) -> None:
    if refund_id_at_gateway:
        refund.gateway_refund_id = refund_id_at_gateway[:255]
    if refund.status == RefundStatus.PENDING:
        refund_transition(refund, to=RefundStatus.PROCESSING)
    refund.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_FIRST_DELAY_SECONDS)


def _record_call(refund_id: str, step: _Call, result: RefundResult) -> _Step:
    with transaction.atomic():
        refund = refund_lock(refund_id)
        attempt = RefundAttempt.objects.get(pk=step.attempt_pk)
        attempt.latency_ms = result.latency_ms
        attempt.http_status = result.http_status
        # A stale try, or a refund already settled, records the answer and decides nothing.
        last = refund_attempt_last(refund) or attempt
        open_ = refund.status == RefundStatus.PENDING and attempt.number == last.number
        following: _Step = Done()
        decision = refund_failover_next(result.outcome)
        if decision == RefundNextStep.PROCESSING:
            attempt.outcome = AttemptOutcome.ACCEPTED
            if open_:
                _accepted(refund, result.refund_id)
        elif decision == RefundNextStep.DECLINED:
            attempt.outcome = AttemptOutcome.DECLINED
            attempt.error = masked_reason(result.reason, default="declined")
            if open_:
                refund_transition(refund, to=RefundStatus.FAILED, failure_reason=RefundFailureReason.DECLINED)
        elif decision == RefundNextStep.WAIT:
            attempt.outcome = AttemptOutcome.ERROR
            attempt.error = (result.error or "not_submitted")[:100]
        elif decision == RefundNextStep.LOOK_UP:
            attempt.outcome = AttemptOutcome.UNKNOWN
            attempt.error = (result.error or "unknown")[:100]
            following = _Lookup(gateway=step.gateway) if open_ else Done()
        else:
            raise AssertionError(f"a refund call cannot lead to {decision}")
        attempt.save(update_fields=REFUND_ATTEMPT_RESULT_FIELDS)
        if decision == RefundNextStep.WAIT and open_:
            following = _wait(refund, timezone.now())
        else:
            refund_save(refund)
    if result.latency_ms is not None:
        GATEWAY_LATENCY.labels(gateway=step.gateway.code, operation="refund").observe(result.latency_ms / 1000)
    if result.outcome in (Outcome.NOT_SUBMITTED, Outcome.UNKNOWN):
        breaker_record_fault(step.gateway.pk)
    else:
        breaker_record_success(step.gateway.pk)
    return following


def _record_lookup(refund_id: str, result: RefundLookupResult, *, expire_if_unresolved: bool) -> _Step:
    """Apply a look-up of the refund's reference; answer whether it must be sent (again) or waited for."""
    with transaction.atomic():
        refund = refund_lock(refund_id)
        if refund.is_final:
            return Done()
        refund.lookup_count += 1
        last = refund_attempt_last(refund)
        following: _Step = Done()
        known = Outcome.ACCEPTED if refund.status == RefundStatus.PROCESSING else Outcome.UNKNOWN
        deadline = refund.created_at + timedelta(seconds=settings.PAYGATE_PROCESSING_DEADLINE_SECONDS)
        decision = refund_failover_next(
            known, result.status, past_deadline=expire_if_unresolved and timezone.now() >= deadline
        )
        if decision in (RefundNextStep.SEND_AGAIN, RefundNextStep.REVIEW):
            # Never received.
            if last is not None and last.outcome in (AttemptOutcome.UNKNOWN, AttemptOutcome.PENDING):
                last.outcome = AttemptOutcome.ERROR
                last.error = f"{last.error or 'unknown'}; not_received"[:100]
                last.save(update_fields=["outcome", "error", "updated_at"])
            if decision == RefundNextStep.SEND_AGAIN:
                # Sending again with the same reference is safe.
                refund.next_check_at = timezone.now()
                following = Continue()
            else:
                # It accepted this refund once and now does not know it: a person should look.
                refund.needs_review = True
                refund.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_INTERVAL_SECONDS)
        elif decision == RefundNextStep.PROCESSING:
            if last is not None and last.outcome != AttemptOutcome.ACCEPTED:
                last.outcome = AttemptOutcome.ACCEPTED
                last.save(update_fields=["outcome", "updated_at"])
            _accepted(refund, result.refund_id)
            if refund.status == RefundStatus.PROCESSING and expire_if_unresolved:
                refund.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_INTERVAL_SECONDS)
        elif decision == RefundNextStep.SUCCEEDED:
            if result.refund_id:
                refund.gateway_refund_id = result.refund_id[:255]
            refund_transition(refund, to=RefundStatus.SUCCEEDED)
        elif decision == RefundNextStep.FAILED:
            refund_transition(refund, to=RefundStatus.FAILED, failure_reason=RefundFailureReason.GATEWAY_FAILED)
        elif decision in (RefundNextStep.LOOK_UP_LATER, RefundNextStep.OVERDUE):  # the look-up itself failed
            if refund.status == RefundStatus.PENDING:
                # Keep it waiting on the look-up; the sweep brings it back.
                refund_transition(refund, to=RefundStatus.PROCESSING)
            if decision == RefundNextStep.OVERDUE and not refund.needs_review:
                # The gateway may have accepted it, so it never fails by our clock alone: failing
                # would free its amount for another refund and invite the merchant to retry, and
                # both could be paid. It stays `processing`, still counted against the deposit
                # and still looked up, for its callback, a look-up or an operator to settle.
                refund.needs_review = True
                logger.warning("refund unresolved past the deadline; kept processing for review")
            refund.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_INTERVAL_SECONDS)
        else:
            raise AssertionError(f"a refund look-up cannot lead to {decision}")
        refund_save(refund)
    return following


def _send(step: _Call) -> RefundResult:
    if sent_too_late(step.attempt_created_at):
        return RefundResult(outcome=Outcome.NOT_SUBMITTED, error=NOT_SENT_IN_TIME)
    return get_adapter(step.gateway.data_format, gateway_credentials(step.gateway)).create_refund(step.request)


def _lookup(refund_id: str, gateway: Gateway) -> RefundLookupResult:
    result = get_adapter(gateway.data_format, gateway_credentials(gateway)).lookup_refund(refund_id)
    if result.latency_ms is not None:
        GATEWAY_LATENCY.labels(gateway=gateway.code, operation="refund_lookup").observe(result.latency_ms / 1000)
    return result


def refund_process(*, refund_id: str) -> RetryLater | None:
    """Drive a pending refund as far as it can go now; return a delay if it must wait."""
    bind(refund=refund_id)
    for _ in range(_MAX_STEPS):
        step = _next_step(refund_id)
        while isinstance(step, (_Call, _Lookup)):
            if isinstance(step, _Call):
                step = _record_call(refund_id, step, _send(step))
            else:
                step = _record_lookup(refund_id, _lookup(refund_id, step.gateway), expire_if_unresolved=False)
        if isinstance(step, Done):
            return None
        if isinstance(step, RetryLater) and step.countdown > 0:
            return step
        # Continue (or a wait of no time): decide again under the lock.
    return RetryLater(countdown=backoff(1))


def refund_reconcile(*, refund_id: str) -> None:
    """Look up a `processing` refund at its gateway; flag it for review past the deadline."""
    bind(refund=refund_id)
    with transaction.atomic():
        refund = refund_lock(refund_id)
        if refund.status != RefundStatus.PROCESSING:
            return
        # Claim this look-up so that a concurrent sweep does not repeat it straight away.
        refund.next_check_at = timezone.now() + timedelta(seconds=settings.PAYGATE_LOOKUP_INTERVAL_SECONDS)
        refund_save(refund, fields=["next_check_at", "updated_at"])
        gateway = refund.gateway
    _record_lookup(refund_id, _lookup(refund_id, gateway), expire_if_unresolved=True)
