"""Writes of saved payment methods: saved when a deposit that asked completes, erased on delete."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.errors import NotFound
from payments.masking import without_sensitive_auth
from payments.methods import SAVABLE_METHODS, details_last4
from payments.models import ApiClient, Event, EventType, Transaction, TransactionType
from payments.services import event_append

from .models import PaymentMethod
from .selectors import payment_method_representation

logger = logging.getLogger(__name__)


def payment_method_save_from(*, txn: Transaction) -> PaymentMethod | None:
    """Keep a completed deposit's details, without any security code, as a method of its customer.

    Called inside the database transaction that completes the deposit (so the method, its event and
    the completion commit together), at most once per deposit (a unique source transaction).
    """
    if not txn.save_payment_method or txn.type != TransactionType.DEPOSIT or txn.payment_method not in SAVABLE_METHODS:
        return None
    if PaymentMethod.objects.filter(source_transaction=txn).exists():
        return None
    details = {
        key: value for key, value in without_sensitive_auth(dict(txn.payment_details)).items() if isinstance(value, str)
    }
    card = txn.payment_method == "card"
    method = PaymentMethod.objects.create(
        client_id=txn.client_id,
        customer_id=txn.customer_id,
        type=txn.payment_method,
        details=details,
        last4=details_last4(txn.payment_method, details),
        exp_month=details.get("exp_month", "") if card else "",
        exp_year=details.get("exp_year", "") if card else "",
        source_transaction=txn,
    )
    method.customer = txn.customer
    event_append(
        client_id=txn.client_id,
        type=EventType.PAYMENT_METHOD_SAVED,
        transaction=txn,
        obj=payment_method_representation(method),
    )
    logger.info("payment method saved", extra={"transaction_id": str(txn.pk), "payment_method_id": method.pk})
    return method


def payment_method_delete(*, client: ApiClient, method_id: str) -> PaymentMethod:
    """Forget a method: its details are erased at once; later use of its id is refused."""
    with transaction.atomic():
        method = (
            PaymentMethod.objects.select_for_update(of=("self",))
            .select_related("customer")
            .filter(client=client, pk=method_id, deleted_at__isnull=True)
            .first()
        )
        if method is None:
            raise NotFound("No such payment method.")
        method.details = {}
        method.deleted_at = timezone.now()
        method.save(update_fields=["details", "deleted_at"])
        event_append(
            client_id=client.pk,
            type=EventType.PAYMENT_METHOD_DELETED,
            transaction=None,
            obj=payment_method_representation(method),
        )
    logger.info("payment method deleted", extra={"payment_method_id": method.pk})
    return method


def on_event_recorded(sender: Any, event: Event, **kwargs: Any) -> None:
    """A deposit that asked to save its method has just completed: save it, in the same database transaction."""
    if event.type != EventType.TRANSACTION_COMPLETED or event.transaction is None:
        return
    if event.transaction.save_payment_method:
        payment_method_save_from(txn=event.transaction)
