"""The merchant-facing form of a transaction: what the API answers and what its events carry.

Written out by hand rather than through DRF serializers: it is built for every response and
every event (the output serializers in `apis/` declare its fields for the OpenAPI schema; a test
keeps the two in agreement).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.utils import timezone

from .actions import next_action_representation
from .models import Attempt, Event, Refund, RefundStatus, Transaction
from .money import format_amount
from .selectors import transaction_masked_details


def iso(value: Any) -> str:
    """As DRF's DateTimeField writes it: ISO 8601 in the current time zone, UTC as `Z`."""
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def attempt_representation(attempt: Attempt) -> dict[str, Any]:
    return {
        "reference": str(attempt.pk),
        "gateway": attempt.gateway.code,
        "outcome": attempt.outcome,
        "error": attempt.error or None,
        "created_at": iso(attempt.created_at),
    }


def refund_representation(refund: Refund) -> dict[str, Any]:
    return {
        "id": str(refund.pk),
        "transaction_id": str(refund.transaction_id),
        "amount": format_amount(refund.amount, refund.currency),
        "currency": refund.currency,
        "status": refund.status,
        "failure_reason": refund.failure_reason,
        "reason": refund.reason,
        "gateway": refund.gateway.code,
        "created_at": iso(refund.created_at),
        "updated_at": iso(refund.updated_at),
    }


def transaction_representation(
    txn: Transaction, *, attempts: Iterable[Attempt] | None = None, refunds: Iterable[Refund] | None = None
) -> dict[str, Any]:
    """`attempts` (in order) and `refunds` (newest first), when given, spare reading them through `txn`."""
    refund_list = list(txn.refunds.all() if refunds is None else refunds)
    refunded = sum((r.amount for r in refund_list if r.status == RefundStatus.SUCCEEDED), start=Decimal(0))
    return {
        "id": str(txn.pk),
        "type": txn.type,
        "status": txn.status,
        "amount": format_amount(txn.amount, txn.currency),
        "currency": txn.currency,
        "country": txn.country_id,
        "customer_id": txn.customer.reference,
        "gateway": txn.gateway.code if txn.gateway else None,
        "gateway_reference": txn.gateway_reference or None,
        "failure_reason": txn.failure_reason,
        "next_action": next_action_representation(txn, iso=iso),
        "payment_method": txn.payment_method or None,
        "payment_details": transaction_masked_details(txn),
        "metadata": txn.metadata,
        "attempts": [attempt_representation(a) for a in (txn.attempts.all() if attempts is None else attempts)],
        "refunded_amount": format_amount(refunded, txn.currency),
        "refunds": [refund_representation(r) for r in refund_list],
        "created_at": iso(txn.created_at),
        "updated_at": iso(txn.updated_at),
    }


def event_representation(event: Event) -> dict[str, Any]:
    return {"id": event.public_id, "type": event.type, "created_at": iso(event.created_at), "data": event.data}
