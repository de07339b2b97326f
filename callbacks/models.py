"""Every gateway callback that passed its signature check, stored before it is applied."""

from __future__ import annotations

from django.db import models

from gateways.models import Gateway


class CallbackEvent(models.Model):
    class Result(models.TextChoices):
        RECEIVED = "received", "Received (not applied yet)"
        APPLIED = "applied", "Applied"
        IGNORED = "ignored", "Ignored (already in that final state)"
        FLAGGED = "flagged", "Flagged for review (not applied)"

    class Signature(models.TextChoices):
        CURRENT = "current", "Current secret"
        PREVIOUS = "previous", "Previous secret (rotation)"

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment"
        REFUND = "refund", "Refund"

    # Found through the unique (gateway, event_id) index.
    gateway = models.ForeignKey(Gateway, on_delete=models.PROTECT, related_name="callback_events", db_index=False)
    event_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PAYMENT)
    reference = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=16, blank=True, default="")
    # The gateway's id of the payment (or, for a refund's callback, of the refund).
    payment_id = models.CharField(max_length=255, blank=True, default="")
    reason = models.CharField(max_length=255, blank=True, default="")
    # The body exactly as signed: as text, or base64 when it is not UTF-8 text PostgreSQL can store.
    raw_body = models.TextField()
    raw_body_base64 = models.BooleanField(default=False)
    headers = models.JSONField(default=dict)
    signature = models.CharField(max_length=10, choices=Signature.choices)
    signature_timestamp = models.BigIntegerField()
    result = models.CharField(max_length=10, choices=Result.choices, default=Result.RECEIVED)
    flagged = models.BooleanField(default=False)
    flag_reason = models.CharField(max_length=64, blank=True, default="")
    transaction = models.ForeignKey(
        "payments.Transaction", on_delete=models.SET_NULL, null=True, blank=True, related_name="callback_events"
    )
    attempt = models.ForeignKey(
        "payments.Attempt", on_delete=models.SET_NULL, null=True, blank=True, related_name="callback_events"
    )
    refund = models.ForeignKey(
        "payments.Refund", on_delete=models.SET_NULL, null=True, blank=True, related_name="callback_events"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # When the recovery sweep republishes it if it is still not applied.
    next_check_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "event_id"], name="callback_gateway_event_unique"),
        ]
        indexes = [models.Index(fields=["result", "next_check_at"], name="callback_result_next_check")]

    def __str__(self) -> str:
        return f"{self.event_id} from {self.gateway.code}"
