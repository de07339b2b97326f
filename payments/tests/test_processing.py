"""The state machine and the waiting logic, without a worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import OperationalError, transaction

from gateways.models import Gateway
from payments.models import Event, FailureReason, Transaction, TransactionStatus
from payments.processing import RetryLater, _next_step
from payments.services import InvalidTransition, transaction_lock, transaction_transition

pytestmark = pytest.mark.django_db


@pytest.fixture
def txn(make_transaction: Callable[..., Transaction]) -> Transaction:
    return make_transaction()


@pytest.mark.parametrize(
    ("start", "to", "allowed"),
    [
        ("pending", "processing", True),
        ("pending", "completed", True),
        ("pending", "failed", True),
        ("processing", "completed", True),
        ("processing", "failed", True),
        ("processing", "pending", True),
        ("completed", "failed", False),
        ("completed", "pending", False),
        ("completed", "processing", False),
        ("failed", "completed", False),
        ("failed", "pending", False),
        ("pending", "pending", False),
        # CONTRACT §11: waiting for the customer, on the gateway that has the payment.
        ("pending", "requires_action", True),
        ("requires_action", "processing", True),
        ("requires_action", "completed", True),
        ("requires_action", "failed", True),
        ("requires_action", "pending", False),  # never failed over
        ("requires_action", "requires_action", False),
        ("processing", "requires_action", False),
        ("completed", "requires_action", False),
        ("failed", "requires_action", False),
    ],
)
def test_state_machine(txn: Transaction, start: str, to: str, allowed: bool) -> None:
    Transaction.objects.filter(pk=txn.pk).update(status=start)
    reason = FailureReason.GATEWAY_FAILED if to == "failed" else None
    events_before = list(Event.objects.filter(transaction=txn).values_list("type", flat=True))
    if allowed:
        with transaction.atomic():
            transaction_transition(transaction_lock(txn.pk), to=to, failure_reason=reason)
        txn.refresh_from_db()
        assert txn.status == to
        assert (txn.finished_at is not None) == (to in {"completed", "failed"})
        # The change and its event, written together.
        event = Event.objects.filter(transaction=txn).order_by("-id").first()
        assert event is not None and event.type == f"transaction.{to}"
        assert event.data["object"]["status"] == to
    else:
        with pytest.raises(InvalidTransition), transaction.atomic():
            transaction_transition(transaction_lock(txn.pk), to=to, failure_reason=reason)
        txn.refresh_from_db()
        assert txn.status == start
        assert list(Event.objects.filter(transaction=txn).values_list("type", flat=True)) == events_before


def test_failed_needs_a_known_reason(txn: Transaction) -> None:
    with pytest.raises(InvalidTransition):
        transaction_transition(txn, to=TransactionStatus.FAILED, failure_reason="because")
    with pytest.raises(InvalidTransition):
        transaction_transition(txn, to=TransactionStatus.FAILED)


def test_waiting_for_a_usable_route_backs_off(txn: Transaction, settings: Any) -> None:
    settings.PAYGATE_RETRY_BACKOFF_BASE_SECONDS = 1
    settings.PAYGATE_RETRY_BACKOFF_MAX_SECONDS = 8
    Gateway.objects.update(health_status=Gateway.Health.UNHEALTHY)
    waits = []
    for _ in range(5):
        step = _next_step(str(txn.pk))
        assert isinstance(step, RetryLater)
        waits.append(step.countdown)
    assert waits == [1, 2, 4, 8, 8]
    txn.refresh_from_db()
    assert txn.status == "pending" and not txn.attempts.exists()


def test_no_gateway_in_time_fails_the_transaction(txn: Transaction, settings: Any) -> None:
    settings.PAYGATE_NO_GATEWAY_DEADLINE_SECONDS = 0
    _next_step(str(txn.pk))
    txn.refresh_from_db()
    assert (txn.status, txn.failure_reason) == ("failed", "no_gateway_available")


def test_database_outage_answers_503(api: Any, monkeypatch: Any) -> None:
    def unreachable(**kwargs: Any) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("payments.apis.transactions.transaction_list", unreachable)
    response = api.get("/api/v1/transactions")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response["Retry-After"]


def test_migrations_match_the_models() -> None:
    with transaction.atomic():
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_the_processing_task_is_registered_wherever_django_runs() -> None:
    """Services publish it by name: a process that never imported payments.tasks must still find it."""
    import subprocess
    import sys

    from testing.stack import ROOT

    code = (
        "import django; django.setup(); from celery import current_app; "
        "from payments.services import PROCESS_TRANSACTION_TASK; "
        "print(current_app.tasks[PROCESS_TRANSACTION_TASK].name)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "payments.process_transaction", result.stderr[-2000:]
