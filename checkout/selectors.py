"""Reads for the pay page: one transaction by id, with what the page shows."""

from __future__ import annotations

import uuid

from payments.models import Transaction


def pay_transaction_get(*, transaction_id: str) -> Transaction | None:
    """The transaction with its client (the merchant's name); None for no such id."""
    try:
        pk = uuid.UUID(transaction_id)
    except ValueError:
        return None
    return (
        Transaction.objects.select_related("client", "gateway")
        .only(
            "id",
            "type",
            "status",
            "failure_reason",
            "amount",
            "currency",
            "return_url",
            "locale",
            "action",
            "payment_method",
            "save_payment_method",
            "created_at",
            "country",
            "gateway__code",
            "client__name",
        )
        .filter(pk=pk)
        .first()
    )
