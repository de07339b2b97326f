"""SQL statements per transaction on the hot paths, in steady state (process-local caches warm).

A change that adds a statement to a create or to processing, or makes processing cost more with
more gateways configured, fails here. The bounds are the counts Django sends today
(`django_assert_max_num_queries` counts BEGIN/COMMIT and savepoints too); processing calls a live
sandbox gateway over HTTP, with its callbacks off so that nothing else touches the transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from gateways.models import Country, Gateway, GatewayRoute
from payments.processing import transaction_process
from testing.steps import deposit, processed

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

# BEGIN, the transaction with its `transaction.created` event (one statement on PostgreSQL, two
# INSERTs on SQLite), COMMIT.
CREATE_STATEMENTS = 3 if connection.vendor == "postgresql" else 4
# Two locked steps (the attempt before the call, the answer after it). On PostgreSQL the first is
# BEGIN, the lock (which reads the customer and the current attempt too), one write (the attempt and
# the row) and COMMIT; the second, with nobody writing the row during the call, BEGIN, one write
# (the attempt, the row, the event of the status change) and COMMIT. SQLite takes the lock twice
# and the ORM's statements one by one: the current attempt's read, the writes apart.
PROCESS_STATEMENTS = 7 if connection.vendor == "postgresql" else 13
DEMO = (("DE", "EUR"), ("GB", "GBP"), ("US", "USD"), ("BR", "BRL"))


def add_irrelevant_gateways() -> None:
    """10 gateways a demo transaction must not pay for: inactive ones routed in the demo countries,
    active ones with inactive routes there, active ones routed elsewhere only."""
    countries = {code: Country.objects.get(code=code) for code, _ in DEMO}
    for code in ("FR", "IT", "ES"):
        countries[code], _ = Country.objects.get_or_create(code=code, defaults={"name": code, "currency": "EUR"})
    for index in range(10):
        gateway = Gateway.objects.create(
            code=f"extra-{index}",
            name=f"Extra {index}",
            data_format="json",
            base_url="http://127.0.0.1:9/",
            api_key=f"extra-{index}-key",
            callback_secret=f"extra-{index}-secret",
            is_active=index >= 4,
        )
        if index < 4:
            targets, active = [code for code, _ in DEMO], True
        elif index < 7:
            targets, active = [code for code, _ in DEMO][:3], False
        else:
            targets, active = [("FR", "IT", "ES")[index - 7]], True
        for country in targets:
            GatewayRoute.objects.create(
                country=countries[country], gateway=gateway, priority=10 + index, is_active=active
            )


def add_other_currency_gateways() -> None:
    """5 more active gateways routed in every demo country, for CHF only (kept by SQL, dropped in Python)."""
    add_irrelevant_gateways()
    for index in range(10, 15):
        gateway = Gateway.objects.create(
            code=f"extra-{index}",
            name=f"Extra {index}",
            data_format="json",
            base_url="http://127.0.0.1:9/",
            api_key=f"extra-{index}-key",
            callback_secret=f"extra-{index}-secret",
        )
        for code, _ in DEMO:
            GatewayRoute.objects.create(
                country=Country.objects.get(code=code), gateway=gateway, priority=20 + index, currencies=["CHF"]
            )


@pytest.mark.django_db(transaction=True)
def test_a_create_costs_one_database_transaction(
    api: Any, quiet_sandboxes: Any, django_assert_max_num_queries: Any
) -> None:
    deposit(api, key="warm-up")

    with django_assert_max_num_queries(CREATE_STATEMENTS):
        deposit(api, key="measured")


@pytest.mark.parametrize(
    "add_gateways",
    [lambda: None, add_irrelevant_gateways, add_other_currency_gateways],
    ids=["demo", "demo+10_irrelevant", "demo+10+5_other_currency"],
)
def test_processing_costs_the_same_whatever_else_is_configured(
    api: Any, quiet_sandboxes: Any, add_gateways: Callable[[], None], django_assert_max_num_queries: Any
) -> None:
    add_gateways()
    for country, currency in DEMO:
        processed(api, country=country, currency=currency, key=f"warm-up-{country}")

    for country, currency in DEMO:
        txn_id = deposit(api, country=country, currency=currency, key=f"measured-{country}")
        with django_assert_max_num_queries(PROCESS_STATEMENTS):
            assert transaction_process(transaction_id=txn_id) is None
