"""A refund the gateway may have accepted never frees its amount by our clock alone.

Past the deadline with its gateway's look-ups unavailable, such a refund stays `processing`
with needs_review: still counted against the deposit (a second refund of the whole amount is
refused), no `refund.failed` event invites the merchant to retry, and its late success callback
is applied. The look-ups run against a real sandbox gateway over HTTP, switched to `down`.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from gateways.models import Gateway
from payments.errors import AmountExceedsRefundable
from payments.models import (
    AttemptOutcome,
    Customer,
    Event,
    Refund,
    RefundAttempt,
    RefundStatus,
    Transaction,
)
from payments.refunds.processing import refund_reconcile
from payments.refunds.services import refund_create
from payments.selectors import refund_review_count
from payments.services import api_key_create
from payments.settlement import refund_settle_from_callback
from testing.stack import Sandbox

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def accepted_refund(quiet_sandboxes: dict[str, Sandbox]) -> Refund:
    """A 100.00 deposit and a refund of all of it that acmepay accepted a day and more ago."""
    client, _ = api_key_create(client_name="refunds")
    deposit = Transaction.objects.create(
        client=client,
        customer=Customer.objects.create(client=client, reference="c1", country_id="DE"),
        type="deposit",
        amount=Decimal("100.00"),
        currency="EUR",
        country_id="DE",
        status="completed",
        gateway=Gateway.objects.get(code="acmepay"),
        gateway_reference="ap_paid",
    )
    refund = refund_create(client=client, transaction_id=deposit.pk).refund
    Refund.objects.filter(pk=refund.pk).update(
        status=RefundStatus.PROCESSING,
        gateway_refund_id="rf_at_gateway",
        created_at=timezone.now() - timedelta(days=2),
    )
    RefundAttempt.objects.create(refund_id=refund.pk, number=1, outcome=AttemptOutcome.ACCEPTED)
    quiet_sandboxes["acmepay"].mode("down")  # every look-up answers 503
    return Refund.objects.get(pk=refund.pk)


def test_past_the_deadline_it_stays_processing_for_review_and_keeps_its_amount(accepted_refund: Refund) -> None:
    refund_reconcile(refund_id=str(accepted_refund.pk))

    refund = Refund.objects.get(pk=accepted_refund.pk)
    assert (refund.status, refund.failure_reason, refund.needs_review) == ("processing", None, True)
    assert refund.next_check_at is not None  # still looked up
    assert not Event.objects.filter(type="refund.failed").exists()
    assert refund_review_count() == 1
    with pytest.raises(AmountExceedsRefundable):
        refund_create(client=refund.client, transaction_id=refund.transaction_id, amount="100.00")


def test_its_late_success_is_applied(accepted_refund: Refund) -> None:
    refund_reconcile(refund_id=str(accepted_refund.pk))

    with transaction.atomic():
        settled = refund_settle_from_callback(
            reference=str(accepted_refund.pk),
            gateway_id=accepted_refund.gateway_id,
            status="succeeded",
            refund_id="rf_at_gateway",
        )

    refund = Refund.objects.get(pk=accepted_refund.pk)
    assert settled.result == "applied"
    assert refund.status == "succeeded"
    assert Event.objects.filter(type="refund.succeeded", refund=refund).exists()
    assert refund_review_count() == 0


def test_a_conclusive_failure_still_frees_the_amount(accepted_refund: Refund, quiet_sandboxes: Any) -> None:
    refund_reconcile(refund_id=str(accepted_refund.pk))
    with transaction.atomic():
        refund_settle_from_callback(
            reference=str(accepted_refund.pk),
            gateway_id=accepted_refund.gateway_id,
            status="failed",
            refund_id="rf_at_gateway",
        )

    again = refund_create(client=accepted_refund.client, transaction_id=accepted_refund.transaction_id, amount="100.00")

    assert again.refund.amount == Decimal("100.00")


def test_an_expired_deposit_is_never_paid_again_by_its_idempotency_key_or_the_sweep(
    api: Any, quiet_sandboxes: dict[str, Sandbox]
) -> None:
    """It may have been paid: the same key replays it (no second payment), the sweep passes it by,
    and only a new request, a new transaction, could pay again (docs/security.md says how to avoid it)."""
    import json

    from payments.tasks import sweep_due

    body = json.dumps({"customer_id": "c", "country": "DE", "amount": "10.00", "currency": "EUR"})
    first = api.post("/api/v1/deposits", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 202, first.content
    Transaction.objects.filter(pk=first.json()["id"]).update(
        status="failed", failure_reason="expired", needs_review=True, next_check_at=timezone.now() - timedelta(hours=1)
    )

    again = api.post("/api/v1/deposits", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1")
    counts = sweep_due()

    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    assert Transaction.objects.count() == 1
    assert counts["pending"] == counts["processing"] == 0
    assert Transaction.objects.get().status == "failed"
