"""Merchant webhook endpoints and the deliveries of events to them (CONTRACT §8)."""

from __future__ import annotations

import uuid

from django.db import models
from fernet_fields import EncryptedTextField

from core.localcache import InvalidatingQuerySet
from payments.models import ApiClient, Event

# Each process keeps a client's active endpoints (payments.Event → deliveries) under this generation.
ENDPOINTS_CACHE = "webhook_endpoints"


class WebhookEndpointQuerySet(InvalidatingQuerySet):
    cache_names = (ENDPOINTS_CACHE,)

    def live(self) -> WebhookEndpointQuerySet:
        """Not deleted (`webhooks.services.webhook_endpoint_delete`)."""
        return self.filter(deleted_at__isnull=True)


class WebhookEndpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2048)
    # Event types, "refund.*"-style prefixes, or "*" for every type.
    events = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    # Signs every delivery; shown to the merchant once, when the endpoint is created.
    secret = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Deleted through the API or the admin: inactive, out of sight, its delivery log kept.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = WebhookEndpointQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["client", "active"], name="webhook_endpoint_client")]

    def __str__(self) -> str:
        return self.url

    def matches(self, event_type: str) -> bool:
        return any(
            pattern == "*" or pattern == event_type or (pattern.endswith(".*") and event_type.startswith(pattern[:-1]))
            for pattern in self.events
        )


class WebhookDelivery(models.Model):
    """One event on its way to one endpoint: the outbox row, tried until it succeeds or the schedule ends."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (every retry used)"

    id = models.BigAutoField(primary_key=True)
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="webhook_deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    # When it is next due; also pushed forward while an attempt is in flight (the claim).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # An attempt holds the delivery until then; past it, the attempt is presumed dead.
    in_flight_until = models.DateTimeField(null=True, blank=True)
    # The dispatcher that holds it (webhooks.dispatcher): one dispatcher serves an endpoint at a time.
    claimed_by = models.CharField(max_length=64, blank=True, default="", editable=False)
    # Since when it waits for one of its endpoint's slots (the endpoint was at its concurrency
    # limit): the next try of that endpoint to end publishes the one that waited longest.
    waiting_since = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(fields=["endpoint", "status"], name="webhook_delivery_endpoint"),
            # The hand-off's look-up stays one index probe however many deliveries an endpoint has pending.
            models.Index(
                fields=["endpoint", "waiting_since"],
                name="webhook_delivery_waiting",
                condition=models.Q(waiting_since__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint}"


class WebhookDeliveryAttempt(models.Model):
    """One POST of a delivery: what the endpoint answered, or why it did not."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=255, blank=True, default="")
    duration_ms = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.delivery_id}: {self.status_code or self.error}"
