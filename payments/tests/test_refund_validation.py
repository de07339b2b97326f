"""A refund request's validation, without a gateway: every bad body is a 400 naming the field, never a 500."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from gateways.models import Gateway
from payments.models import Refund, Transaction
from payments.services import api_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def completed(make_transaction: Callable[..., Transaction]) -> tuple[APIClient, Transaction]:
    txn = make_transaction(amount="25", status="completed", gateway=Gateway.objects.get(code="acmepay"))
    key = api_key_create(client_name=txn.client.name)[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client, txn


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "AAA"}, "amount"),
        ({"amount": "sNaN"}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"reason": 7}, "reason"),
        ({"reason": "x" * 256}, "reason"),
        ({"color": "red"}, "color"),
    ],
)
def test_a_bad_refund_body_is_a_400_naming_the_field(
    completed: tuple[APIClient, Transaction], body: dict[str, Any], field: str
) -> None:
    client, txn = completed
    response = client.post(
        f"/api/v1/transactions/{txn.pk}/refunds", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not Refund.objects.exists()


def test_a_bad_amount_in_xml_is_a_400(completed: tuple[APIClient, Transaction]) -> None:
    client, txn = completed
    response = client.post(
        f"/api/v1/transactions/{txn.pk}/refunds",
        data="<refund><amount>AAA</amount></refund>",
        content_type="application/xml",
    )
    assert response.status_code == 400
    assert not Refund.objects.exists()


def test_the_sweep_republishes_a_refund_whose_task_was_lost(
    completed: tuple[APIClient, Transaction], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from payments import tasks

    client, txn = completed
    response = client.post(
        f"/api/v1/transactions/{txn.pk}/refunds", data=json.dumps({"amount": "5.00"}), content_type="application/json"
    )
    assert response.status_code == 202
    refund = Refund.objects.get()
    Refund.objects.filter(pk=refund.pk).update(next_check_at=timezone.now() - timedelta(hours=1))
    published: list[str] = []
    monkeypatch.setattr(tasks.process_refund, "apply_async", lambda args, **_: published.append(args[0]))

    counts = tasks.sweep_due()

    assert counts["refund_pending"] == 1 and published == [str(refund.pk)]
    refund.refresh_from_db()
    assert refund.next_check_at > timezone.now()  # held: the next sweep leaves it alone
    assert tasks.sweep_due()["refund_pending"] == 0


def test_an_amount_too_precise_for_the_deposit_s_currency_is_a_422(completed: tuple[APIClient, Transaction]) -> None:
    """The body does not name the currency: "1.001" is a well-formed amount that an EUR deposit refuses."""
    client, txn = completed
    response = client.post(
        f"/api/v1/transactions/{txn.pk}/refunds", data=json.dumps({"amount": "1.001"}), content_type="application/json"
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_amount" and "amount" in response.json()["error"]["fields"]
    assert not Refund.objects.exists()
