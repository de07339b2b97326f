"""The locked steps' short forms stay right under contention.

On PostgreSQL the lock statement reads the transaction, its customer and its current attempt
together. A statement that waited for the lock gets the row as the holder left it but, left to
itself, the attempt as it was before: the waiter must still see the attempt the holder changed
or added. And a call's answer is recorded without the lock only on the row exactly as the
attempt's step left it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections, transaction

from gateways.models import Gateway
from gateways.types import Outcome, PaymentResult
from payments.models import Attempt, AttemptOutcome, FailureReason, Transaction, TransactionStatus
from payments.processing import Call, _next_step, _record_result, transaction_return_lookup
from payments.services import (
    TransactionChanged,
    transaction_current_attempt,
    transaction_lock,
    transaction_resume,
    transaction_save,
    transaction_transition,
)
from testing.stack import wait_for


def _add_attempt(txn: Transaction, gateway: Gateway) -> None:
    attempt = Attempt(transaction=txn, number=txn.attempt_count + 1, gateway=gateway)
    txn.attempt_count = attempt.number
    transaction_save(txn, fields=["attempt_count", "updated_at"], attempt=attempt)


def _waiting_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # a transaction's first read of it holds otherwise
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return bool(cursor.fetchone()[0])


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["its outcome", "a new attempt"])
def test_a_waiter_sees_the_attempt_the_holder_of_the_lock_wrote(
    make_transaction: Callable[..., Transaction], change: str
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's writers are serial: nobody waits inside a statement")
    gateway = Gateway.objects.get(code="acmepay")
    txn_id = make_transaction().pk
    with transaction.atomic():
        _add_attempt(transaction_lock(txn_id), gateway)
    seen: dict[str, Any] = {}

    def waiter() -> None:
        try:
            with transaction.atomic():
                current = transaction_current_attempt(transaction_lock(txn_id))
                assert current is not None
                seen.update(number=current.number, outcome=current.outcome)
        except BaseException as exc:  # reported to the test
            seen["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=waiter, daemon=True)
    with transaction.atomic():
        held = transaction_lock(txn_id)
        thread.start()
        wait_for(_waiting_for_a_lock, timeout=10, message="the waiter to queue on the row lock")
        if change == "its outcome":
            attempt = transaction_current_attempt(held)
            assert attempt is not None
            attempt.outcome = AttemptOutcome.ACCEPTED
            transaction_save(held, fields=["updated_at"], attempt=attempt)
        else:
            _add_attempt(held, gateway)
    thread.join(10)
    expected = (
        {"number": 1, "outcome": AttemptOutcome.ACCEPTED}
        if change == "its outcome"
        else {"number": 2, "outcome": AttemptOutcome.PENDING}
    )
    assert seen == expected


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_answer_skips_the_lock_only_if_nobody_wrote_the_row_during_the_call(
    make_transaction: Callable[..., Transaction],
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's steps always take the lock")
    accepted = PaymentResult(outcome=Outcome.ACCEPTED, payment_id="pay_1", http_status=202, latency_ms=1.0)
    untouched, touched = str(make_transaction().pk), str(make_transaction().pk)
    for txn_id in (untouched, touched):
        call = _next_step(txn_id)
        assert isinstance(call, Call) and call.written is not None
        if txn_id == touched:
            with transaction.atomic():  # another step, while the call was out
                transaction_save(transaction_lock(txn_id), fields=["updated_at"])
            with pytest.raises(TransactionChanged):
                _record_result(txn_id, call.attempt_id, accepted, resumed=transaction_resume(call.written))
            assert Transaction.objects.get(pk=txn_id).status == TransactionStatus.PENDING
            assert Attempt.objects.get(pk=call.attempt_id).outcome == AttemptOutcome.PENDING
            _record_result(txn_id, call.attempt_id, accepted)
        else:
            _record_result(txn_id, call.attempt_id, accepted, resumed=transaction_resume(call.written))
        assert Transaction.objects.get(pk=txn_id).status == TransactionStatus.PROCESSING
        assert Attempt.objects.get(pk=call.attempt_id).outcome == AttemptOutcome.ACCEPTED


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_return_waits_for_a_status_change_under_way_and_then_sees_it(
    make_transaction: Callable[..., Transaction],
) -> None:
    """The gateway sends its callback and the customer back at once: the return must not read
    the status from before the callback's apply, which holds the row lock, commits."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's writers are serial: nobody waits inside a statement")
    txn_id = make_transaction(status=TransactionStatus.REQUIRES_ACTION).pk
    seen: dict[str, Any] = {}

    def customer_returns() -> None:
        try:
            transaction_return_lookup(transaction_id=str(txn_id), timeout=10)
            seen["status"] = Transaction.objects.get(pk=txn_id).status
        except BaseException as exc:  # reported to the test
            seen["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=customer_returns, daemon=True)
    with transaction.atomic():
        held = transaction_lock(txn_id)
        thread.start()
        wait_for(_waiting_for_a_lock, timeout=10, message="the return to wait on the row lock")
        transaction_transition(held, to=TransactionStatus.FAILED, failure_reason=FailureReason.CANCELLED)
    thread.join(10)
    assert seen == {"status": TransactionStatus.FAILED}
