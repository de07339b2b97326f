"""Saved payment methods (CONTRACT §12): a customer's details, kept because they asked, under a key of their own."""

from __future__ import annotations

import secrets
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.db import models
from fernet_fields import hkdf

from core.fields import EncryptedJSONField
from gateways.methods import PaymentMethod as MethodType
from payments.models import ApiClient, Customer, Transaction

METHOD_ID_PREFIX = "pm_"


def new_method_id() -> str:
    return METHOD_ID_PREFIX + secrets.token_hex(12)


class VaultJSONField(EncryptedJSONField):
    """Encrypted under PAYGATE_VAULT_KEYS (newest first), not FERNET_KEYS: a leak or rotation of one
    key set leaves the other alone. `rotate_encryption_keys` re-encrypts it like every encrypted column."""

    @property
    def keys(self) -> list[str]:
        return list(settings.PAYGATE_VAULT_KEYS)

    @property
    def fernet_keys(self) -> list[bytes]:
        return [hkdf.derive_fernet_key(key) for key in self.keys]

    @property
    def fernet(self) -> Any:
        return MultiFernet([Fernet(key) for key in self.fernet_keys])


class PaymentMethod(models.Model):
    """One saved method of one customer. Deleting it erases its details; the row stays, so that the
    deposit that saved it never saves it again and the id is never reused."""

    id = models.CharField(primary_key=True, max_length=40, default=new_method_id, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    type = models.CharField(max_length=16, choices=MethodType.choices)
    details: Any = VaultJSONField(default=dict, blank=True)
    # What a customer recognises the method by: never more than four characters.
    last4 = models.CharField(max_length=4, blank=True, default="")
    exp_month = models.CharField(max_length=2, blank=True, default="")
    exp_year = models.CharField(max_length=4, blank=True, default="")
    # The deposit whose completion saved it (unique: a completion applied twice saves once).
    source_transaction = models.OneToOneField(
        Transaction, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["customer", "created_at"], name="vault_pm_customer_created")]

    def __str__(self) -> str:
        return f"{self.id} ({self.type} …{self.last4})"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None
