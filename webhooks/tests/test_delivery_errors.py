"""What `GET /api/v1/events/{id}/deliveries` tells a merchant of a try: coarse codes, no timings of
failed connections, so an endpoint URL cannot be used to scan ports from Paygate's address."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from gateways.services import demo_seed
from payments.models import Customer, Event, EventType, Transaction
from payments.services import api_key_create, event_append
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db

# (stored status_code, stored error, stored duration) → (shown error, shown duration)
TRIES = [
    ((200, "", 12.345), (None, 12.0)),
    ((500, "http_500", 40.6), ("http_500", 41.0)),
    ((200, "timeout", 10500.0), ("timeout", 10500.0)),
    ((None, "connection_refused", 0.8), ("no_answer", 0.0)),
    ((None, "connect_timeout", 5000.0), ("no_answer", 0.0)),
    ((None, "address_blocked", 0.1), ("no_answer", 0.0)),
    ((None, "connect_failed", 3.0), ("no_answer", 0.0)),
    ((None, "timeout", 10000.0), ("no_answer", 0.0)),
    ((None, "endpoint_disabled", 0.0), ("endpoint_disabled", 0.0)),
]


@pytest.fixture
def api_and_event(db: Any, settings: Any) -> tuple[APIClient, Event]:
    settings.PAYGATE_WEBHOOK_ALLOW_PRIVATE = True
    demo_seed()
    client_row, key = api_key_create(client_name="hooks")
    txn = Transaction.objects.create(
        client=client_row,
        customer=Customer.objects.create(client=client_row, reference="c", country_id="DE"),
        type="deposit",
        amount="5",
        currency="EUR",
        country_id="DE",
    )
    webhook_endpoint_create(client=client_row, url="https://127.0.0.1:6379/x", events=["*"])
    with transaction.atomic():
        event = event_append(client_id=client_row.pk, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return api, event


def test_each_try_shows_a_coarse_code_and_no_timing_of_a_failed_connection(
    api_and_event: tuple[APIClient, Event],
) -> None:
    api, event = api_and_event
    delivery = WebhookDelivery.objects.get()
    for (status_code, error, duration), _ in TRIES:
        delivery.attempts.create(status_code=status_code, error=error, duration_ms=duration)

    shown = api.get(f"/api/v1/events/{event.public_id}/deliveries").json()["results"]

    assert [(item["error"], item["duration_ms"]) for item in shown] == [expected for _, expected in TRIES]
    assert [item["status_code"] for item in shown] == [status_code for (status_code, _, _), _ in TRIES]
