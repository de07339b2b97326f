"""Deliveries are written with their event, in the same database transaction, for matching endpoints only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from payments.models import EventType, Transaction
from payments.services import event_append, transaction_lock, transaction_transition
from webhooks.dispatcher import Result, deliveries_claim, deliveries_dispatch_once, results_record
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_endpoint_create

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


def test_a_due_delivery_is_claimed_once_until_its_try_is_recorded(make_transaction: Callable[..., Transaction]) -> None:
    txn = make_transaction()
    endpoint(txn, ["*"])
    with transaction.atomic():
        event_append(client_id=txn.client_id, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})
    delivery = WebhookDelivery.objects.get()

    claimed = deliveries_claim(limit=10)
    assert [item.delivery_id for item in claimed] == [delivery.pk]
    assert deliveries_claim(limit=10) == []  # in flight: nobody claims it again
    results_record([Result(delivery.pk, 0, 500, "http_500", 3.0, final=False)])

    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempt_count == 1 and delivery.in_flight_until is None
    assert delivery.next_attempt_at > timezone.now()  # due again on the schedule, not before
    assert deliveries_claim(limit=10) == []


def test_every_delivery_checks_the_address_again(make_transaction: Callable[..., Transaction], settings: Any) -> None:
    """Allowed when created, refused at delivery once the rule applies (a name re-pointed inside the network)."""
    txn = make_transaction()
    endpoint(txn, ["*"], url="https://127.0.0.1:9/hook")
    with transaction.atomic():
        event_append(client_id=txn.client_id, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})
    delivery = WebhookDelivery.objects.get()
    settings.PAYGATE_WEBHOOK_ALLOW_PRIVATE = False

    assert deliveries_dispatch_once() == 1

    attempt = delivery.attempts.get()
    assert attempt.status_code is None and attempt.error == "address_blocked"
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempt_count == 1  # retried on the schedule


def test_a_result_whose_claim_lapsed_and_was_tried_again_changes_nothing_but_its_try(
    make_transaction: Callable[..., Transaction],
) -> None:
    txn = make_transaction()
    endpoint(txn, ["*"])
    with transaction.atomic():
        event_append(client_id=txn.client_id, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})
    delivery = WebhookDelivery.objects.get()

    results_record([Result(delivery.pk, 0, 200, "", 3.0, final=False)])
    results_record([Result(delivery.pk, 0, None, "timeout", 10_000.0, final=False)])  # the lapsed claim's, late

    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempt_count == 1
    assert delivery.attempts.count() == 2  # both tries were made, and both are shown


def test_a_claim_takes_each_endpoint_s_oldest_deliveries_up_to_what_its_dispatcher_may_hold(
    make_transaction: Callable[..., Transaction], settings: Any
) -> None:
    from datetime import timedelta

    settings.PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY = 2
    settings.PAYGATE_WEBHOOK_CLAIM_DEPTH = 1
    txn = make_transaction()
    mine = endpoint(txn, ["*"], url="http://127.0.0.1:9/mine")
    other = endpoint(txn, ["*"], url="http://127.0.0.1:9/other")
    with transaction.atomic():
        for _ in range(4):
            event_append(client_id=txn.client_id, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})
    rows = list(WebhookDelivery.objects.filter(endpoint=mine).order_by("pk"))
    held = timezone.now() + timedelta(seconds=30)
    WebhookDelivery.objects.filter(pk=rows[0].pk).update(in_flight_until=held, claimed_by="d1")

    claimed = deliveries_claim(limit=100, owner="d1")

    by_endpoint: dict[Any, list[int]] = {}
    for item in claimed:
        by_endpoint.setdefault(item.endpoint_id, []).append(item.delivery_id)
    assert by_endpoint[mine.pk] == [rows[1].pk]  # holds one of two already: the oldest that waits
    assert len(by_endpoint[other.pk]) == 2  # the other endpoint is not held up by the busy one
    assert deliveries_claim(limit=100, owner="d1") == []  # it holds all it may of both now


def test_an_endpoint_is_served_by_one_dispatcher_at_a_time(
    make_transaction: Callable[..., Transaction], settings: Any
) -> None:
    settings.PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY = 2
    settings.PAYGATE_WEBHOOK_CLAIM_DEPTH = 2
    txn = make_transaction()
    endpoint(txn, ["*"])
    with transaction.atomic():
        for _ in range(6):
            event_append(client_id=txn.client_id, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})

    first = deliveries_claim(limit=100, owner="d1")
    assert len(first) == 4  # concurrency x depth
    assert deliveries_claim(limit=100, owner="d2") == []  # d1 serves it: d2 takes none
    results_record([Result(item.delivery_id, 0, 200, "", 1.0, final=False) for item in first])
    assert len(deliveries_claim(limit=100, owner="d2")) == 2  # d1 holds none now


def test_a_claim_takes_no_more_than_asked(make_transaction: Callable[..., Transaction]) -> None:
    txn = make_transaction()
    endpoint(txn, ["*"], url="http://127.0.0.1:9/a")
    endpoint(txn, ["*"], url="http://127.0.0.1:9/b")
    with transaction.atomic():
        event_append(client_id=txn.client_id, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})
    assert len(deliveries_claim(limit=1)) == 1
    assert len(deliveries_claim(limit=1)) == 1
    assert deliveries_claim(limit=1) == []


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
    assert deliveries_dispatch_once() == 1
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts.get().error == "endpoint_deleted"
