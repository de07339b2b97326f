"""The merchant-facing form of a transaction: what the API answers and what its events carry.

Written out by hand rather than through DRF serializers: it is built for every response and
every event (the serializers in `apis.py` keep the fields for the OpenAPI schema; a test keeps
the two in agreement).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from .models import Attempt, Event, Transaction
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


def transaction_representation(txn: Transaction, *, attempts: Iterable[Attempt] | None = None) -> dict[str, Any]:
    """`attempts`, when given, are the transaction's attempts in order (else read through `txn.attempts`)."""
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
        "payment_details": transaction_masked_details(txn),
        "metadata": txn.metadata,
        "attempts": [attempt_representation(a) for a in (txn.attempts.all() if attempts is None else attempts)],
        "created_at": iso(txn.created_at),
        "updated_at": iso(txn.updated_at),
    }


def event_representation(event: Event) -> dict[str, Any]:
    return {"id": event.public_id, "type": event.type, "created_at": iso(event.created_at), "data": event.data}
