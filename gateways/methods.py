"""The payment methods a route can serve (CONTRACT §12); payments.methods holds their rules."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models


class PaymentMethod(models.TextChoices):
    """What the customer pays with, or is paid to."""

    CARD = "card", "Card"
    BANK_ACCOUNT = "bank_account", "Bank account"
    WALLET = "wallet", "Wallet"
    # The customer gives everything at the gateway (a §11 action): no details.
    REDIRECT = "redirect", "Redirect"


PAYMENT_METHODS: tuple[str, ...] = tuple(PaymentMethod.values)


def validate_payment_methods(value: object) -> None:
    """A route's methods: a list of known methods without repeats (empty: every method)."""
    if (
        not isinstance(value, list)
        or not all(item in PAYMENT_METHODS for item in value)
        or len(set(value)) < len(value)
    ):
        raise ValidationError(f"A list of payment methods: {', '.join(PAYMENT_METHODS)} (empty: every method).")
