"""Reads: a client's own transactions, never anyone else's."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Count, Prefetch, QuerySet

from core.masking import without_sensitive_auth

from .masking import mask_details
from .models import ApiClient, Attempt, Transaction, TransactionStatus

# The statuses in which a transaction waits for Paygate or a gateway to move it on.
WAITING_STATUSES = (TransactionStatus.PENDING, TransactionStatus.PROCESSING)


def transaction_queryset(*, client: ApiClient) -> QuerySet[Transaction]:
    return (
        Transaction.objects.filter(client=client)
        .select_related("customer", "gateway")
        .prefetch_related(Prefetch("attempts", queryset=Attempt.objects.select_related("gateway").order_by("number")))
    )


def transaction_get(*, client: ApiClient, transaction_id: str) -> Transaction | None:
    try:
        pk = uuid.UUID(str(transaction_id))
    except ValueError:
        return None
    return transaction_queryset(client=client).filter(pk=pk).first()


def transaction_list(*, client: ApiClient, filters: dict[str, Any]) -> QuerySet[Transaction]:
    queryset = transaction_queryset(client=client).order_by("-created_at", "-id")
    if filters.get("status"):
        queryset = queryset.filter(status=filters["status"])
    if filters.get("type"):
        queryset = queryset.filter(type=filters["type"])
    if filters.get("country"):
        queryset = queryset.filter(country_id=filters["country"])
    if filters.get("gateway"):
        queryset = queryset.filter(gateway__code=filters["gateway"])
    return queryset


def transaction_masked_details(txn: Transaction) -> Any:
    """What a person may see of the details: masked, without security codes, PINs or track data.

    Purged details are stored masked already; masking them again would change how they read.
    """
    if txn.details_purged_at is not None:
        return without_sensitive_auth(txn.payment_details)
    return mask_details(txn.payment_details)


def transaction_oldest_waiting_ages(*, now: datetime) -> dict[str, float | None]:
    """Per waiting status, the seconds since the oldest transaction in it was created (None: none waits)."""
    ages: dict[str, float | None] = {}
    for status in WAITING_STATUSES:
        created = (
            Transaction.objects.filter(status=status)
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        ages[status] = (now - created).total_seconds() if created else None
    return ages


def transaction_waiting_counts() -> dict[str, int]:
    """How many transactions wait in each waiting status (0 for a status none waits in)."""
    counts = dict(
        Transaction.objects.filter(status__in=WAITING_STATUSES)
        .order_by()  # no default ordering in the GROUP BY
        .values("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return {status: int(counts.get(status, 0)) for status in WAITING_STATUSES}
