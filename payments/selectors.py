"""Reads: a client's own transactions, never anyone else's."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from core.db import CompletedHorizon, OwnTransactionId

from .actions import ACTION_COLLECT
from .masking import mask_details, without_sensitive_auth
from .methods import mask_method_details
from .models import EVENT_PREFIX, ApiClient, Attempt, Event, Refund, RefundStatus, Transaction, TransactionStatus

# The statuses in which a transaction waits for Paygate or a gateway to move it on.
WAITING_STATUSES = (TransactionStatus.PENDING, TransactionStatus.REQUIRES_ACTION, TransactionStatus.PROCESSING)


def transaction_queryset(*, client: ApiClient) -> QuerySet[Transaction]:
    return (
        Transaction.objects.filter(client=client)
        .select_related("customer", "gateway")
        .prefetch_related(
            Prefetch("attempts", queryset=Attempt.objects.select_related("gateway").order_by("number")),
            Prefetch("refunds", queryset=Refund.objects.select_related("gateway").order_by("-created_at", "-id")),
        )
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
    if txn.payment_method:
        return mask_method_details(txn.payment_method, txn.payment_details)
    return mask_details(txn.payment_details)


def transaction_oldest_waiting_ages(*, now: datetime) -> dict[str, float | None]:
    """Per waiting status, the seconds since the oldest transaction in it was created (None: none waits).

    A deposit still waiting for the customer to type its details on the pay page (CONTRACT §12) is
    not stuck: it is left out until the details arrive (or it expires)."""
    ages: dict[str, float | None] = {}
    for status in WAITING_STATUSES:
        created = (
            Transaction.objects.filter(status=status)
            .exclude(action__type=ACTION_COLLECT, action__has_key="deadline")
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        ages[status] = (now - created).total_seconds() if created else None
    return ages


def event_uid(event_id: str) -> uuid.UUID | None:
    """The uuid inside a public event id (`evt_<32 hex>`); None if it is not one."""
    if not isinstance(event_id, str) or not event_id.startswith(EVENT_PREFIX):
        return None
    try:
        return uuid.UUID(hex=event_id[len(EVENT_PREFIX) :])
    except ValueError:
        return None


def event_get(*, client: ApiClient, event_id: str) -> Event | None:
    uid = event_uid(event_id)
    return None if uid is None else Event.objects.filter(client=client, uid=uid).first()


def event_feed(
    *,
    client: ApiClient,
    after: Event | None = None,
    limit: int = 20,
    type: str | None = None,
    transaction_id: uuid.UUID | None = None,
) -> tuple[list[Event], bool]:
    """A client's events oldest first, after `after`; and whether more are visible now.

    Only events whose writers have all finished are served (`CompletedHorizon`): an event
    committed late, by a transaction older than one already served, is never passed over by
    the cursor, because nothing is served beyond the oldest transaction still running. The
    reader's own uncommitted events are visible to it as well (tests, or a caller inside a write).
    """
    queryset = Event.objects.filter(client=client).filter(Q(txid__lt=CompletedHorizon()) | Q(txid=OwnTransactionId()))
    if after is not None:
        queryset = queryset.filter(Q(txid__gt=after.txid) | Q(txid=after.txid, id__gt=after.pk))
    if type:
        queryset = queryset.filter(type=type)
    if transaction_id is not None:
        queryset = queryset.filter(transaction_id=transaction_id)
    page = list(queryset.order_by("txid", "id")[: limit + 1])
    return page[:limit], len(page) > limit


def refund_get(*, client: ApiClient, refund_id: str) -> Refund | None:
    try:
        pk = uuid.UUID(str(refund_id))
    except ValueError:
        return None
    return Refund.objects.select_related("gateway").filter(client=client, pk=pk).first()


def refund_counts() -> dict[str, int]:
    """Refunds by status (every status, zero included)."""
    counts = dict.fromkeys(RefundStatus.values, 0)
    for row in Refund.objects.values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


def refund_review_count() -> int:
    """Refunds not final that a person should look at (past the deadline, the gateway silent)."""
    return Refund.objects.filter(status__in=(RefundStatus.PENDING, RefundStatus.PROCESSING), needs_review=True).count()


def refund_oldest_open_age(*, now: datetime) -> float:
    created = (
        Refund.objects.filter(status__in=(RefundStatus.PENDING, RefundStatus.PROCESSING))
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return (now - created).total_seconds() if created else 0.0


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
