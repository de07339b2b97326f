"""Reads: a client's own endpoints and the deliveries of its own events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Min, QuerySet

from payments.models import ApiClient, Event

from .models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint


def webhook_endpoint_list(*, client: ApiClient) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.live().filter(client=client).order_by("created_at", "id")


def webhook_endpoint_get(*, client: ApiClient, endpoint_id: str) -> WebhookEndpoint | None:
    try:
        pk = uuid.UUID(str(endpoint_id))
    except ValueError:
        return None
    return WebhookEndpoint.objects.live().filter(client=client, pk=pk).first()


def event_delivery_attempts(*, event: Event) -> QuerySet[WebhookDeliveryAttempt]:
    return (
        WebhookDeliveryAttempt.objects.filter(delivery__event=event)
        .select_related("delivery__endpoint")
        .order_by("created_at", "id")
    )


def deliveries_state(*, now: datetime) -> dict[str, Any]:
    """For monitoring: the age of the oldest pending delivery, and how many active endpoints are
    failing now (they have a delivery waiting for a retry after a failed try)."""
    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
    oldest = pending.aggregate(at=Min("created_at"))["at"]
    failing = pending.filter(attempt_count__gte=1, endpoint__active=True).values("endpoint_id").distinct().count()
    return {
        "oldest_pending_age_seconds": (now - oldest).total_seconds() if oldest else 0.0,
        "failing_endpoints": failing,
    }
