"""Celery tasks of the payment pipeline: ids in, one service call each, safe to run twice."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.queues import PIPELINE_TASK, sweep_cutoff

from .models import Refund, RefundStatus, Transaction, TransactionStatus
from .processing import transaction_process, transaction_reconcile
from .refunds import PROCESS_REFUND_TASK, RECONCILE_REFUND_TASK, refund_process, refund_publish, refund_reconcile
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


@shared_task(name="payments.sweep_due", acks_late=True, ignore_result=True, priority=0)
def sweep_due() -> dict[str, int]:
    """Republish pending transactions whose task was lost; look up `processing` ones that are due.

    Each picked row's `next_check_at` is pushed forward in the same statement that picks
    it, so overlapping sweeps do not publish the same transaction twice in a row (and if
    they do, the tasks are idempotent anyway).
    """
    now = timezone.now()
    cutoff = sweep_cutoff(now)
    counts: dict[str, int] = {}
    for status, task, hold in (
        (TransactionStatus.PENDING, process_transaction, 60),
        (TransactionStatus.PROCESSING, reconcile_transaction, settings.PAYGATE_LOOKUP_INTERVAL_SECONDS),
    ):
        with transaction.atomic():
            due = list(
                Transaction.objects.filter(status=status, next_check_at__lte=cutoff)
                .order_by("next_check_at")
                .values_list("pk", flat=True)[:_SWEEP_BATCH]
            )
            Transaction.objects.filter(pk__in=due, status=status).update(next_check_at=now + timedelta(seconds=hold))
        for pk in due:
            try:
                task.apply_async(args=(str(pk),))
            except Exception:
                logger.exception("sweep could not publish", extra={"transaction_id": str(pk)})
                break
        counts[status] = len(due)
    for refund_status, refund_task, refund_hold in (
        (RefundStatus.PENDING, process_refund, 60),
        (RefundStatus.PROCESSING, reconcile_refund, settings.PAYGATE_LOOKUP_INTERVAL_SECONDS),
    ):
        with transaction.atomic():
            due = list(
                Refund.objects.filter(status=refund_status, next_check_at__lte=cutoff)
                .order_by("next_check_at")
                .values_list("pk", flat=True)[:_SWEEP_BATCH]
            )
            Refund.objects.filter(pk__in=due, status=refund_status).update(
                next_check_at=now + timedelta(seconds=refund_hold)
            )
        for pk in due:
            try:
                refund_task.apply_async(args=(str(pk),))
            except Exception:
                logger.exception("sweep could not publish", extra={"refund": str(pk)})
                break
        counts[f"refund_{refund_status}"] = len(due)
    if any(counts.values()):
        logger.info("sweep published %s", counts)
    return counts


@shared_task(name="payments.purge_payment_details", acks_late=True, ignore_result=True, priority=0)
def purge_payment_details() -> int:
    """Past PAYGATE_PAYMENT_DETAILS_RETENTION_DAYS, a final transaction keeps only masked details."""
    return payment_details_purge()
