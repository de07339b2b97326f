"""Signed callbacks are evidence: stored whatever their content, then flagged or refused, never a 500."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from callbacks.models import CallbackEvent
from core.signing import signature_header
from gateways.demo import demo_callback_secret
from gateways.models import Gateway
from payments.models import Attempt, Transaction, TransactionStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def attempt(make_transaction: Callable[..., Transaction]) -> Attempt:
    txn = make_transaction(status=TransactionStatus.PROCESSING)
    return Attempt.objects.create(transaction=txn, number=1, gateway=Gateway.objects.get(code="acmepay"))


def signed(client: Client, body: bytes, *, gateway: str = "acmepay", content_type: str = "application/json") -> Any:
    header = signature_header(secret=demo_callback_secret(gateway), body=body)
    return client.post(f"/api/v1/callbacks/{gateway}", data=body, content_type=content_type, HTTP_X_SIGNATURE=header)


def notification(attempt: Attempt, **changes: Any) -> bytes:
    fields = {"event_id": "evt_1", "payment_id": "pay_1", "reference": str(attempt.pk), "status": "completed"}
    return json.dumps({**fields, "reason": None, **changes}).encode()


@pytest.mark.parametrize(
    ("changes", "stored"),
    [
        pytest.param({"event_id": "evt\u00001"}, {"reason": ""}, id="nul-in-event-id"),
        pytest.param({"event_id": "evt\ud8001"}, {"reason": ""}, id="surrogate-in-event-id"),
        pytest.param({"reason": "r\u0000"}, {"event_id": "evt_1", "reason": "r\\x00"}, id="nul-in-reason"),
        pytest.param({"payment_id": "pay\u0000"}, {"payment_id": "pay\\x00"}, id="nul-in-payment-id"),
    ],
)
def test_unstorable_text_is_stored_escaped_flagged_and_answered_200(
    client: Client, attempt: Attempt, changes: dict[str, Any], stored: dict[str, str]
) -> None:
    body = notification(attempt, **changes)

    response = signed(client, body)
    again = signed(client, body)  # the gateway's retry is the same event

    assert response.status_code == 200 and response.json() == {"received": True}
    assert again.status_code == 200
    event = CallbackEvent.objects.get()
    assert (event.result, event.flagged, event.flag_reason) == ("flagged", True, "unstorable_text")
    assert (event.raw_body, event.raw_body_base64) == (body.decode(), False)
    for name, value in stored.items():
        assert getattr(event, name) == value
    if "event_id" in changes:
        assert event.event_id.startswith("sha256:")
    txn = attempt.transaction
    txn.refresh_from_db()
    assert txn.status == TransactionStatus.PROCESSING  # not applied


def test_a_malformed_signed_callback_is_stored_flagged_and_refused(client: Client, attempt: Attempt) -> None:
    body = b'{"event_id": "evt_1", "status": "completed", "reference": "\x00 raw NUL \xff"}'

    response = signed(client, body)
    again = signed(client, body)

    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_callback"
    assert again.status_code == 400
    event = CallbackEvent.objects.get()
    assert (event.result, event.flag_reason, event.raw_body_base64) == ("flagged", "malformed_callback", True)
    assert base64.b64decode(event.raw_body) == body
    assert event.event_id.startswith("sha256:")


def test_a_malformed_soap_callback_is_stored_as_text(client: Client, attempt: Attempt) -> None:
    body = b"<PaymentNotification><EventId>&#0;</EventId></PaymentNotification>"

    response = signed(client, body, gateway="soapbank", content_type="application/xml")

    assert response.status_code == 400
    event = CallbackEvent.objects.get()
    assert (event.flag_reason, event.raw_body, event.raw_body_base64) == ("malformed_callback", body.decode(), False)


def test_a_stored_header_with_a_nul_is_kept_escaped(client: Client, attempt: Attempt) -> None:
    body = notification(attempt)
    header = signature_header(secret=demo_callback_secret("acmepay"), body=body)

    response = client.post(
        "/api/v1/callbacks/acmepay",
        data=body,
        content_type="application/json",
        HTTP_X_SIGNATURE=header,
        HTTP_USER_AGENT="gw\x00agent",
    )

    assert response.status_code == 200
    event = CallbackEvent.objects.get()
    assert event.headers["User-Agent"] == "gw\\x00agent"
    assert event.result == "applied"


def test_an_unsigned_callback_is_refused_and_not_stored(client: Client, attempt: Attempt) -> None:
    response = client.post(
        "/api/v1/callbacks/acmepay", data=notification(attempt, event_id="e\u0000"), content_type="application/json"
    )

    assert response.status_code == 401
    assert not CallbackEvent.objects.exists()
