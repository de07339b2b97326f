"""One row per floor transaction: the columns a transaction has, without Paygate's logic."""

from __future__ import annotations

import uuid

from django.db import models


class FloorTransaction(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=10)
    customer_id = models.CharField(max_length=100)
    country = models.CharField(max_length=2)
    amount = models.DecimalField(max_digits=24, decimal_places=4)
    currency = models.CharField(max_length=3)
    # Plain JSON: no encryption, that is part of what the floor leaves out.
    payment_details = models.JSONField(default=dict)
    metadata = models.JSONField(default=dict)
    # pending -> processing (the task, before its gateway call) -> completed | failed (the callback).
    status = models.CharField(max_length=10, default="pending")
    gateway_reference = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return str(self.id)
