"""Celery tasks of webhook delivery, on their own queue (`webhooks`): a slow endpoint never holds up payments."""

from __future__ import annotations

from celery import shared_task

from .services import DELIVER_TASK, deliveries_sweep, webhook_deliver


@shared_task(name=DELIVER_TASK, acks_late=True, ignore_result=True)
def deliver(delivery_id: int, attempt_count: int = 0) -> None:
    webhook_deliver(delivery_id=delivery_id, attempt_count=attempt_count)


@shared_task(name="webhooks.sweep", acks_late=True, ignore_result=True, priority=0)
def sweep() -> int:
    return deliveries_sweep()
