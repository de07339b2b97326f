"""Applying stored callbacks on a worker: those the web process could not apply after answering."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from core.queues import PIPELINE_TASK, sweep_cutoff

from .models import CallbackEvent
from .services import callback_apply

logger = logging.getLogger(__name__)

_SWEEP_HOLD_SECONDS = 60


# Ahead of new payments (default priority 5): finishing a transaction comes before starting one.
APPLY_PRIORITY = 3


@shared_task(name="callbacks.apply_event", priority=APPLY_PRIORITY, **PIPELINE_TASK)
def apply_event(event_pk: int) -> None:
    callback_apply(event_pk=event_pk)


@shared_task(name="callbacks.sweep_unapplied", acks_late=True, ignore_result=True, priority=0)
def sweep_unapplied() -> int:
    """Publish stored callbacks that were never applied (the web process died or failed first).

    The picked events' next check moves a minute ahead in the same transaction, so an event
    merely waiting in a long queue is not published again on every sweep.
    """
    now = timezone.now()
    cutoff = sweep_cutoff(now)
    with transaction.atomic():
        pks = list(
            CallbackEvent.objects.filter(result=CallbackEvent.Result.RECEIVED, next_check_at__lte=cutoff)
            .order_by("next_check_at")
            .values_list("pk", flat=True)[:500]
        )
        CallbackEvent.objects.filter(pk__in=pks).update(next_check_at=now + timedelta(seconds=_SWEEP_HOLD_SECONDS))
    for pk in pks:
        try:
            apply_event.apply_async(args=(pk,))
        except Exception:
            logger.exception("sweep could not publish a callback", extra={"event_pk": pk})
            break
    return len(pks)
