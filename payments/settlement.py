"""Callbacks' settlement: a gateway's signed final word on a payment or a refund (CONTRACT §2, §9).

The callbacks app verifies and stores a callback, then hands its facts here, inside its own
atomic block, which also records what came of the callback: if it rolls back, so does the
change. Each settlement locks its row through the state owner (`services`, `refunds.services`)
and answers one `Settlement`: applied, ignored (already so), or flagged for an operator, with
the reason. A callback may arrive before the pipeline recorded the gateway's accept: it still
applies.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from core.logs import bind

from .models import (
    ATTEMPT_RESULT_FIELDS,
    Attempt,
    AttemptOutcome,
    FailureReason,
    Refund,
    RefundFailureReason,
    RefundStatus,
    TransactionStatus,
)
from .processing import (
    attempts_if_first,
    transaction_attempt_current,
    transaction_failure_reason,
    transaction_route_score,
)
from .refunds.processing import refund_attempt_last
from .refunds.services import refund_lock, refund_save, refund_transition
from .services import transaction_lock_by_attempt, transaction_save, transaction_transition


class SettlementResult(enum.StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"  # already in the final state the callback names
    FLAGGED = "flagged"  # not applied: an operator should look (see `flag_reason`)


@dataclass(frozen=True, slots=True)
class Settlement:
    result: SettlementResult
    flag_reason: str = ""
    transaction_id: uuid.UUID | None = None
    attempt_id: uuid.UUID | None = None  # a payment's callback: the attempt it names
    refund_id: uuid.UUID | None = None  # a refund's callback: the refund it names


def transaction_settle_from_callback(
    *, reference: str, gateway_id: int, status: str, payment_id: str, reason: str | None = None
) -> Settlement:
    """Apply a gateway's signed final word on one of our attempts (CONTRACT §2).

    One for an attempt that is not the current one, from another gateway, naming another
    payment, or contradicting a final status is not applied and comes back flagged.
    """
    try:
        attempt_id = uuid.UUID(reference)
    except ValueError:
        return Settlement(SettlementResult.FLAGGED, "unknown_reference")
    txn = transaction_lock_by_attempt(attempt_id)
    if txn is None:
        return Settlement(SettlementResult.FLAGGED, "unknown_reference")
    bind(transaction_id=txn.pk)
    current = transaction_attempt_current(txn)
    attempt = current if current is not None and current.pk == attempt_id else Attempt.objects.get(pk=attempt_id)

    def flagged(reason: str) -> Settlement:
        return Settlement(SettlementResult.FLAGGED, reason, transaction_id=txn.pk, attempt_id=attempt.pk)

    if attempt.gateway_id != gateway_id:
        return flagged("gateway_mismatch")
    if attempt is not current:
        return flagged("stale_attempt")
    if (
        attempt.outcome == AttemptOutcome.ACCEPTED
        and attempt.gateway_payment_id
        and payment_id
        and payment_id != attempt.gateway_payment_id
    ):
        # The gateway told us which payment it made; a callback naming another one is not
        # evidence about ours (a mix-up at the gateway, or a signed message reused).
        return flagged("payment_id_mismatch")
    target = TransactionStatus.COMPLETED if status == "completed" else TransactionStatus.FAILED
    if txn.is_final:
        if txn.status == target and (
            target == TransactionStatus.COMPLETED
            or txn.failure_reason in (FailureReason.GATEWAY_FAILED, FailureReason.CANCELLED, FailureReason.DECLINED)
        ):
            return Settlement(SettlementResult.IGNORED, transaction_id=txn.pk, attempt_id=attempt.pk)
        return flagged("final_state_conflict")
    if not attempt.error:  # a call that faulted was scored as a failure then (`processing._record_result`)
        transaction_route_score(txn, attempt, success=target == TransactionStatus.COMPLETED)
    payment_id = payment_id or attempt.gateway_payment_id
    if attempt.outcome != AttemptOutcome.ACCEPTED or attempt.gateway_payment_id != payment_id:
        attempt.outcome = AttemptOutcome.ACCEPTED
        attempt.gateway_payment_id = payment_id
        attempt.save(update_fields=ATTEMPT_RESULT_FIELDS)
    txn.gateway = attempt.gateway
    txn.gateway_reference = attempt.gateway_payment_id
    transaction_transition(
        txn,
        to=target,
        failure_reason=transaction_failure_reason(txn, reason) if target == TransactionStatus.FAILED else None,
        save=False,
    )
    transaction_save(txn, attempts=attempts_if_first(attempt) if attempt is current else None)
    return Settlement(SettlementResult.APPLIED, transaction_id=txn.pk, attempt_id=attempt.pk)


def refund_settle_from_callback(*, reference: str, gateway_id: int, status: str, refund_id: str) -> Settlement:
    """Apply a gateway's signed final word on one of our refunds (CONTRACT §9).

    One from another gateway than the refund's, naming another refund at the gateway, or
    contradicting a final status is not applied and comes back flagged.
    """
    try:
        pk = uuid.UUID(reference)
    except ValueError:
        return Settlement(SettlementResult.FLAGGED, "unknown_reference")
    if not Refund.objects.filter(pk=pk).exists():
        return Settlement(SettlementResult.FLAGGED, "unknown_reference")
    refund = refund_lock(pk)
    bind(refund=str(refund.pk))

    def settled(result: SettlementResult, reason: str = "") -> Settlement:
        return Settlement(result, reason, transaction_id=refund.transaction_id, refund_id=refund.pk)

    if refund.gateway_id != gateway_id:
        return settled(SettlementResult.FLAGGED, "gateway_mismatch")
    if refund.gateway_refund_id and refund_id and refund_id != refund.gateway_refund_id:
        return settled(SettlementResult.FLAGGED, "refund_id_mismatch")
    target = RefundStatus.SUCCEEDED if status == "succeeded" else RefundStatus.FAILED
    if refund.is_final:
        if refund.status == target and (
            target == RefundStatus.SUCCEEDED or refund.failure_reason == RefundFailureReason.GATEWAY_FAILED
        ):
            return settled(SettlementResult.IGNORED)
        return settled(SettlementResult.FLAGGED, "final_state_conflict")
    if refund_id:
        refund.gateway_refund_id = refund_id[:255]
    last = refund_attempt_last(refund)
    if last is not None and last.outcome != AttemptOutcome.ACCEPTED:
        last.outcome = AttemptOutcome.ACCEPTED
        last.save(update_fields=["outcome", "updated_at"])
    refund_transition(
        refund,
        to=target,
        failure_reason=RefundFailureReason.GATEWAY_FAILED if target == RefundStatus.FAILED else None,
    )
    refund_save(refund)
    return settled(SettlementResult.APPLIED)
