"""Applying a stored callback event, without a worker or a web server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from callbacks.models import CallbackEvent
from callbacks.services import callback_apply
from gateways.models import Gateway
from payments.models import Attempt, AttemptOutcome, Transaction, TransactionStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(make_transaction: Callable[..., Transaction]) -> CallbackEvent:
    """A `completed` callback, stored and not applied, for the current attempt of a `processing` deposit."""
    txn = make_transaction(status=TransactionStatus.PROCESSING)
    acmepay = Gateway.objects.get(code="acmepay")
    attempt = Attempt.objects.create(transaction=txn, number=1, gateway=acmepay)
    return CallbackEvent.objects.create(
        gateway=acmepay,
        event_id="evt_1",
        reference=str(attempt.pk),
        status="completed",
        payment_id="pay_1",
        raw_body="{}",
        signature="current",
        signature_timestamp=0,
    )


def test_the_event_completes_the_transaction(event: CallbackEvent) -> None:
    callback_apply(event_pk=event.pk)

    event.refresh_from_db()
    txn = Transaction.objects.get(attempts__pk=event.reference)
    assert (event.result, txn.status, txn.gateway_reference) == ("applied", "completed", "pay_1")
    assert Attempt.objects.get(pk=event.reference).outcome == AttemptOutcome.ACCEPTED


def test_a_second_applier_with_the_event_as_it_was_stored_changes_nothing(event: CallbackEvent) -> None:
    as_stored = CallbackEvent.objects.get(pk=event.pk)
    callback_apply(event_pk=event.pk)

    # Without the compare-and-set it would record the event again, now as `ignored`.
    callback_apply(event_pk=event.pk, event=as_stored)

    event.refresh_from_db()
    assert event.result == CallbackEvent.Result.APPLIED


def test_an_applier_that_finds_the_event_gone_from_received_rolls_back(event: CallbackEvent) -> None:
    as_stored = CallbackEvent.objects.get(pk=event.pk)
    # Another applier got there first and flagged it; the transaction is still open.
    CallbackEvent.objects.filter(pk=event.pk).update(result="flagged", flagged=True, flag_reason="elsewhere")

    callback_apply(event_pk=event.pk, event=as_stored)

    txn = Transaction.objects.get(attempts__pk=event.reference)
    assert txn.status == TransactionStatus.PROCESSING and txn.finished_at is None
    assert Attempt.objects.get(pk=event.reference).outcome == AttemptOutcome.PENDING
    event.refresh_from_db()
    assert (event.result, event.flag_reason) == ("flagged", "elsewhere")


def test_only_the_applier_that_records_a_flag_reports_it(
    event: CallbackEvent, caplog: pytest.LogCaptureFixture
) -> None:
    txn = Transaction.objects.get(attempts__pk=event.reference)
    Attempt.objects.create(transaction=txn, number=2, gateway=Gateway.objects.get(code="soapbank"))
    as_stored = CallbackEvent.objects.get(pk=event.pk)

    callback_apply(event_pk=event.pk)
    callback_apply(event_pk=event.pk, event=as_stored)  # flags it too, then finds it taken

    event.refresh_from_db()
    assert (event.result, event.flag_reason) == ("flagged", "stale_attempt")
    reports = [r for r in caplog.records if r.getMessage().startswith("callback flagged for review")]
    assert [r.getMessage() for r in reports] == ["callback flagged for review: stale_attempt"]


def test_a_callback_naming_another_payment_than_the_gateway_returned_is_flagged_and_changes_nothing(
    event: CallbackEvent,
) -> None:
    attempt = Attempt.objects.get(pk=event.reference)
    # The gateway accepted the attempt as pay_real; the (correctly signed) callback names pay_1.
    Attempt.objects.filter(pk=attempt.pk).update(outcome=AttemptOutcome.ACCEPTED, gateway_payment_id="pay_real")
    Transaction.objects.filter(pk=attempt.transaction_id).update(gateway=attempt.gateway, gateway_reference="pay_real")

    callback_apply(event_pk=event.pk)

    event.refresh_from_db()
    assert (event.result, event.flagged, event.flag_reason) == ("flagged", True, "payment_id_mismatch")
    txn = Transaction.objects.get(pk=attempt.transaction_id)
    assert (txn.status, txn.gateway_reference, txn.finished_at) == (TransactionStatus.PROCESSING, "pay_real", None)
    assert Attempt.objects.get(pk=attempt.pk).gateway_payment_id == "pay_real"

    right = CallbackEvent.objects.create(
        gateway=attempt.gateway,
        event_id="evt_2",
        reference=str(attempt.pk),
        status="completed",
        payment_id="pay_real",
        raw_body="{}",
        signature="current",
        signature_timestamp=0,
    )
    callback_apply(event_pk=right.pk)
    right.refresh_from_db()
    txn.refresh_from_db()
    assert (right.result, txn.status, txn.gateway_reference) == ("applied", "completed", "pay_real")


def test_a_gateway_answer_naming_another_payment_than_the_callback_that_came_first_needs_review(
    event: CallbackEvent,
) -> None:
    from gateways.types import Outcome, PaymentResult
    from payments.processing import _record_result

    callback_apply(event_pk=event.pk)  # the callback came first: completed as pay_1
    attempt = Attempt.objects.get(pk=event.reference)

    _record_result(
        str(attempt.transaction_id), str(attempt.pk), PaymentResult(outcome=Outcome.ACCEPTED, payment_id="pay_real")
    )

    txn = Transaction.objects.get(pk=attempt.transaction_id)
    assert (txn.status, txn.needs_review) == (TransactionStatus.COMPLETED, True)
