"""Data migrations, run against rows made by the current code."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest
from django.apps import apps

from gateways.models import Gateway
from payments.models import Attempt, Transaction


@pytest.mark.django_db
def test_attempt_count_is_filled_in_from_the_attempts_already_made(
    make_transaction: Callable[..., Transaction],
) -> None:
    made = [make_transaction() for _ in range(3)]
    acmepay, soapbank = Gateway.objects.get(code="acmepay"), Gateway.objects.get(code="soapbank")
    Attempt.objects.create(transaction=made[0], number=1, gateway=acmepay, outcome="error")
    Attempt.objects.create(transaction=made[0], number=2, gateway=soapbank, outcome="accepted")
    Attempt.objects.create(transaction=made[1], number=1, gateway=acmepay, outcome="accepted")
    Transaction.objects.update(attempt_count=0)  # as the column was added: 0 everywhere

    migration = importlib.import_module("payments.migrations.0003_transaction_attempt_count")
    migration.count_existing_attempts(apps, None)

    counts = dict(Transaction.objects.values_list("pk", "attempt_count"))
    assert [counts[txn.pk] for txn in made] == [2, 1, 0]
