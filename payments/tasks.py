"""Celery tasks of the payment pipeline: ids in, one service call each, safe to run twice."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.queues import PIPELINE_TASK, sweep_cutoff

from .models import Refund, RefundStatus, Transaction, TransactionStatus
from .processing import transaction_process, transaction_reconcile
from .refunds.processing import refund_process, refund_reconcile
from .refunds.services import PROCESS_REFUND_TASK, RECONCILE_REFUND_TASK, refund_publish
from .services import PROCESS_TRANSACTION_TASK, payment_details_purge
from .services import transaction_publish as publish_process_transaction

logger = logging.getLogger(__name__)


@shared_task(name=PROCESS_TRANSACTION_TASK, **PIPELINE_TASK)
def process_transaction(transaction_id: str) -> None:
    retry = transaction_process(transaction_id=transaction_id)
    if retry is not None:
        publish_process_transaction(transaction_id, countdown=retry.countdown)


@shared_task(name="payments.reconcile_transaction", **PIPELINE_TASK)
def reconcile_transaction(transaction_id: str) -> None:
    retry = transaction_reconcile(transaction_id=transaction_id)
    if retry is not None:
        publish_process_transaction(transaction_id, countdown=retry.countdown)


@shared_task(name=PROCESS_REFUND_TASK, **PIPELINE_TASK)
def process_refund(refund_id: str) -> None:
    retry = refund_process(refund_id=refund_id)
    if retry is not None:
        refund_publish(refund_id, countdown=retry.countdown)


@shared_task(name=RECONCILE_REFUND_TASK, **PIPELINE_TASK)
def reconcile_refund(refund_id: str) -> None:
    refund_reconcile(refund_id=refund_id)


_SWEEP_BATCH = 500


def _sweep(
    model: type[Transaction] | type[Refund],
    status: str,
    task: Any,
    hold: float,
    *,
    now: datetime,
    cutoff: datetime,
) -> int:
    """Publish `task` for the rows of `model` in `status` that are due; push each one's next check by `hold`."""
    with transaction.atomic():
        due = list(
            model.objects.filter(status=status, next_check_at__lte=cutoff)
            .order_by("next_check_at")
            .values_list("pk", flat=True)[:_SWEEP_BATCH]
        )
        model.objects.filter(pk__in=due, status=status).update(next_check_at=now + timedelta(seconds=hold))
    for pk in due:
        try:
            task.apply_async(args=(str(pk),))
        except Exception:
            logger.exception("sweep could not publish", extra={"task": task.name, "object": str(pk)})
            break
    return len(due)


@shared_task(name="payments.sweep_due", acks_late=True, ignore_result=True, priority=0)
def sweep_due() -> dict[str, int]:
    """Republish pending transactions and refunds whose task was lost; look up `processing` ones that are due.

    Each picked row's `next_check_at` is pushed forward in the same statement that picks
    it, so overlapping sweeps do not publish the same transaction twice in a row (and if
    they do, the tasks are idempotent anyway).
    """
    now = timezone.now()
    cutoff = sweep_cutoff(now)
    lookup_hold = settings.PAYGATE_LOOKUP_INTERVAL_SECONDS
    counts = {
        "pending": _sweep(Transaction, TransactionStatus.PENDING, process_transaction, 60, now=now, cutoff=cutoff),
        "processing": _sweep(
            Transaction, TransactionStatus.PROCESSING, reconcile_transaction, lookup_hold, now=now, cutoff=cutoff
        ),
        # An action's deadline (CONTRACT §11): one more look-up, then `expired`.
        "requires_action": _sweep(
            Transaction, TransactionStatus.REQUIRES_ACTION, reconcile_transaction, lookup_hold, now=now, cutoff=cutoff
        ),
        "refund_pending": _sweep(Refund, RefundStatus.PENDING, process_refund, 60, now=now, cutoff=cutoff),
        "refund_processing": _sweep(
            Refund, RefundStatus.PROCESSING, reconcile_refund, lookup_hold, now=now, cutoff=cutoff
        ),
    }
    if any(counts.values()):
        logger.info("sweep published %s", counts)
    return counts


@shared_task(name="payments.purge_payment_details", acks_late=True, ignore_result=True, priority=0)
def purge_payment_details() -> int:
    """Past PAYGATE_PAYMENT_DETAILS_RETENTION_DAYS, a final transaction keeps only masked details."""
    return payment_details_purge()
