"""Deliveries are written with their event, in the same database transaction, for matching endpoints only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from payments.models import EventType, Transaction
from payments.services import event_append, transaction_lock, transaction_transition
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import deliveries_sweep, webhook_deliver, webhook_endpoint_create

pytestmark = pytest.mark.django_db


def endpoint(txn: Transaction, events: list[str], url: str = "http://127.0.0.1:9/hook") -> WebhookEndpoint:
    return webhook_endpoint_create(client=txn.client, url=url, events=events).endpoint


@pytest.fixture(autouse=True)
def private_allowed(settings: Any) -> None:
    settings.PAYGATE_WEBHOOK_ALLOW_PRIVATE = True


def test_a_status_change_writes_deliveries_for_the_endpoints_that_subscribe(
    make_transaction: Callable[..., Transaction],
) -> None:
    txn = make_transaction()
    everything = endpoint(txn, ["*"])
    completed_only = endpoint(txn, ["transaction.completed"])
    endpoint(txn, ["refund.*"])
    disabled = endpoint(txn, ["*"])
    disabled.active = False
    disabled.save()

    with transaction.atomic():
        transaction_transition(transaction_lock(txn.pk), to="processing")
    with transaction.atomic():
        transaction_transition(transaction_lock(txn.pk), to="completed")

    deliveries = WebhookDelivery.objects.select_related("event").order_by("id")
    assert [(d.endpoint_id, d.event.type) for d in deliveries] == [
        (everything.pk, "transaction.processing"),
        (everything.pk, "transaction.completed"),
        (completed_only.pk, "transaction.completed"),
    ]
    assert all(d.status == "pending" and d.attempt_count == 0 for d in deliveries)


def test_a_change_that_rolls_back_leaves_neither_event_nor_delivery(
    make_transaction: Callable[..., Transaction],
) -> None:
    txn = make_transaction()
    endpoint(txn, ["*"])

    with pytest.raises(RuntimeError), transaction.atomic():
        transaction_transition(transaction_lock(txn.pk), to="processing")
        raise RuntimeError("the database transaction fails after the change")

    assert not WebhookDelivery.objects.exists()
    assert not txn.events.exists()


def test_the_sweep_publishes_what_was_never_published(make_transaction: Callable[..., Transaction]) -> None:
    txn = make_transaction()
    endpoint(txn, ["*"])
    with transaction.atomic():
        event_append(client_id=txn.client_id, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})
    # In this test the on-commit publish never ran (the test's transaction does not commit): as if the broker was down.
    delivery = WebhookDelivery.objects.get()

    from django.utils import timezone

    assert deliveries_sweep(now=timezone.now()) == 1
    delivery.refresh_from_db()
    assert delivery.next_attempt_at > timezone.now()  # held, so the next sweep does not publish it again
    assert deliveries_sweep(now=timezone.now()) == 0


def test_every_delivery_checks_the_address_again(make_transaction: Callable[..., Transaction], settings: Any) -> None:
    """Allowed when created, refused at delivery once the rule applies (a name re-pointed inside the network)."""
    txn = make_transaction()
    endpoint(txn, ["*"], url="https://127.0.0.1:9/hook")
    with transaction.atomic():
        event_append(client_id=txn.client_id, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})
    delivery = WebhookDelivery.objects.get()
    settings.PAYGATE_WEBHOOK_ALLOW_PRIVATE = False

    webhook_deliver(delivery_id=delivery.pk, attempt_count=0)

    attempt = delivery.attempts.get()
    assert attempt.status_code is None and attempt.error == "address_blocked"
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempt_count == 1  # retried on the schedule


def test_a_duplicate_task_for_a_try_already_made_does_nothing(
    make_transaction: Callable[..., Transaction], settings: Any
) -> None:
    txn = make_transaction()
    endpoint(txn, ["*"])
    with transaction.atomic():
        event_append(client_id=txn.client_id, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})
    delivery = WebhookDelivery.objects.get()

    webhook_deliver(delivery_id=delivery.pk, attempt_count=0)  # connection refused: port 9
    webhook_deliver(delivery_id=delivery.pk, attempt_count=0)  # the same try, published twice

    assert delivery.attempts.count() == 1


def test_a_free_slot_goes_to_the_delivery_that_waited_longest(
    make_transaction: Callable[..., Transaction], settings: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    settings.PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY = 1
    txn = make_transaction()
    endpoint(txn, ["*"])  # port 9: each try is refused at once
    with transaction.atomic():
        for _ in range(3):
            event_append(client_id=txn.client_id, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})
    first, second, third = WebhookDelivery.objects.order_by("pk")
    WebhookDelivery.objects.filter(pk=first.pk).update(in_flight_until=timezone.now() + timedelta(seconds=30))

    webhook_deliver(delivery_id=second.pk, attempt_count=0)  # the endpoint's one slot is taken: waits
    webhook_deliver(delivery_id=third.pk, attempt_count=0)  # waits behind it
    second.refresh_from_db()
    third.refresh_from_db()
    assert second.waiting_since is not None and third.waiting_since is not None
    assert second.waiting_since <= third.waiting_since
    assert not second.attempts.exists() and not third.attempts.exists()

    WebhookDelivery.objects.filter(pk=first.pk).update(in_flight_until=None)  # its try ended
    webhook_deliver(delivery_id=third.pk, attempt_count=0)  # the third's task comes first…

    second.refresh_from_db()
    third.refresh_from_db()
    assert second.attempts.count() == 1 and second.waiting_since is None  # …and the slot goes to the second
    assert not third.attempts.exists() and third.waiting_since is not None


@pytest.mark.django_db(transaction=True)
def test_a_status_change_that_still_writes_a_delivery_for_an_endpoint_deleted_meanwhile_commits(
    make_transaction: Callable[..., Transaction],
) -> None:
    """Another process read the client's endpoints before the delete reached it: its status change
    writes a delivery for the deleted endpoint, commits all the same, and the delivery ends failed."""
    from webhooks import services

    txn = make_transaction()
    deleted = endpoint(txn, ["*"])
    services.webhook_endpoint_delete(endpoint=deleted)
    services._endpoints.put(txn.client_id, (deleted,))  # that process's view, from before the delete

    with transaction.atomic():
        transaction_transition(transaction_lock(txn.pk), to="processing")

    txn.refresh_from_db()
    assert txn.status == "processing"
    delivery = WebhookDelivery.objects.get(endpoint=deleted)
    webhook_deliver(delivery_id=delivery.pk, attempt_count=0)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts.get().error == "endpoint_deleted"
