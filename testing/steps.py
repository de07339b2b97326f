"""One deposit's steps driven in this process: the merchant's create, the worker's processing and the
gateway's signed callback, each on its own (for the query counts and bench/steps.py)."""

from __future__ import annotations

import json
from typing import Any

from testing.factories import BANK


def deposit(api: Any, *, country: str = "DE", currency: str = "EUR", key: str) -> str:
    """A deposit created through the API with idempotency key `key`; its id."""
    body = {
        "customer_id": f"cus_q_{country}",
        "country": country,
        "amount": "25.00",
        "currency": currency,
        "payment_details": BANK,
    }
    response = api.post(
        "/api/v1/deposits", data=json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 202, response.content
    return str(response.json()["id"])


def processed(api: Any, *, country: str = "DE", currency: str = "EUR", key: str) -> Any:
    """A deposit created and processed in this process; its accepted attempt."""
    from payments.models import Attempt
    from payments.processing import transaction_process

    txn_id = deposit(api, country=country, currency=currency, key=key)
    assert transaction_process(transaction_id=txn_id) is None
    attempt = Attempt.objects.select_related("gateway").filter(transaction_id=txn_id).latest("number")
    assert attempt.outcome == "accepted"
    return attempt


def completed_callback(attempt: Any, *, event_id: str) -> tuple[bytes, str]:
    """A signed `completed` notification for a JSON gateway's accepted attempt, as the gateway sends it."""
    from core.signing import signature_header

    body = json.dumps(
        {
            "event_id": event_id,
            "payment_id": attempt.gateway_payment_id,
            "reference": str(attempt.pk),
            "status": "completed",
            "reason": None,
        }
    ).encode()
    return body, signature_header(secret=attempt.gateway.callback_secret, body=body)
