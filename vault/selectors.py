"""Reads of saved payment methods."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from core.text import is_storable
from payments.methods import SavedMethod
from payments.models import ApiClient
from payments.representations import iso

from .models import PaymentMethod


def payment_method_list(*, client: ApiClient, customer_reference: str) -> QuerySet[PaymentMethod]:
    """The customer's methods that are not deleted, oldest first (none for an unknown customer)."""
    return PaymentMethod.objects.filter(
        client=client, customer__reference=customer_reference, deleted_at__isnull=True
    ).select_related("customer")


def payment_method_get(*, client: ApiClient, method_id: str) -> PaymentMethod | None:
    if not is_storable(method_id):
        return None
    return PaymentMethod.objects.filter(client=client, pk=method_id, deleted_at__isnull=True).first()


def saved_method_for_customer(*, client_id: int, customer_reference: str, method_id: str) -> SavedMethod | None:
    """The details of a customer's own method, for a new transaction; None for anything else alike."""
    if not is_storable(method_id) or not is_storable(customer_reference):
        return None
    method = PaymentMethod.objects.filter(
        pk=method_id, client_id=client_id, customer__reference=customer_reference, deleted_at__isnull=True
    ).first()
    if method is None:
        return None
    return SavedMethod(id=method.pk, type=method.type, details=dict(method.details))


def payment_method_representation(method: PaymentMethod) -> dict[str, Any]:
    """What the API, the events and the admin show: never more than the last four characters."""
    card = method.type == "card"
    return {
        "id": method.pk,
        "type": method.type,
        "customer_id": method.customer.reference,
        "last4": method.last4,
        "exp_month": (method.exp_month or None) if card else None,
        "exp_year": (method.exp_year or None) if card else None,
        "created_at": iso(method.created_at),
    }
