"""Data migrations, run against rows made by the current code."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from django.apps import apps

from gateways.models import Gateway
from gateways.services import demo_seed
from payments.models import Attempt, Transaction

DEPOSIT = {
    "customer_id": "cus_1",
    "country": "DE",
    "amount": "25.00",
    "currency": "EUR",
    "payment_details": {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"},
}


@pytest.mark.django_db
def test_attempt_count_is_filled_in_from_the_attempts_already_made(api: Any) -> None:
    demo_seed()
    made = [
        api.post("/api/v1/deposits", data=json.dumps(DEPOSIT), content_type="application/json").json()["id"]
        for _ in range(3)
    ]
    acmepay, soapbank = Gateway.objects.get(code="acmepay"), Gateway.objects.get(code="soapbank")
    Attempt.objects.create(transaction_id=made[0], number=1, gateway=acmepay, outcome="error")
    Attempt.objects.create(transaction_id=made[0], number=2, gateway=soapbank, outcome="accepted")
    Attempt.objects.create(transaction_id=made[1], number=1, gateway=acmepay, outcome="accepted")
    Transaction.objects.update(attempt_count=0)  # as the column was added: 0 everywhere

    migration = importlib.import_module("payments.migrations.0003_transaction_attempt_count")
    migration.count_existing_attempts(apps, None)

    counts = dict(Transaction.objects.filter(pk__in=made).values_list("pk", "attempt_count"))
    assert [counts[Transaction._meta.pk.to_python(pk)] for pk in made] == [2, 1, 0]
