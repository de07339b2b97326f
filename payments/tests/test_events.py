"""The event feed (CONTRACT §8): one event per status change, append-only, paged without skips."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, connections, transaction

from payments.models import ApiClient, Event, EventType, Transaction
from payments.processing import transaction_process
from payments.selectors import event_feed
from payments.services import api_key_create, event_append
from testing.factories import deposit_body
from testing.stack import wait_for

pytestmark = pytest.mark.django_db

DEPOSIT = deposit_body(customer_id="cus_ev", payment_details=None, metadata=None)


def deposit(api: Any) -> dict[str, Any]:
    response = api.post("/api/v1/deposits", data=json.dumps(DEPOSIT), content_type="application/json")
    assert response.status_code == 202, response.content
    return dict(response.json())


def all_pages(api: Any, **params: Any) -> list[dict[str, Any]]:
    """Follow `after` to the end of the feed."""
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        query = {**params, **({"after": after} if after else {})}
        body = api.get("/api/v1/events", query).json()
        seen.extend(body["results"])
        if not body["has_more"]:
            return seen
        after = body["results"][-1]["id"]


@pytest.mark.integration
def test_a_deposit_records_created_then_processing_each_with_the_transaction_as_the_api_shows_it(
    api: Any, quiet_sandboxes: Any
) -> None:
    created = deposit(api)
    assert transaction_process(transaction_id=created["id"]) is None

    events = all_pages(api, transaction=created["id"])

    assert [e["type"] for e in events] == ["transaction.created", "transaction.processing"]
    assert events[0]["data"]["object"] == created
    shown = api.get(f"/api/v1/transactions/{created['id']}").json()
    assert events[1]["data"]["object"] == shown
    assert all(e["id"].startswith("evt_") and len(e["id"]) == 36 for e in events)
    assert api.get(f"/api/v1/events/{events[1]['id']}").json() == events[1]


def test_a_client_sees_only_its_own_events(api: Any, other_api: Any, quiet_sandboxes: Any) -> None:
    created = deposit(api)
    mine = all_pages(api)
    assert [e["data"]["object"]["id"] for e in mine] == [created["id"]]

    assert all_pages(other_api) == []
    assert other_api.get(f"/api/v1/events/{mine[0]['id']}").status_code == 404
    assert other_api.get("/api/v1/events", {"after": mine[0]["id"]}).status_code == 404


def test_pages_follow_after_and_limit_oldest_first(api: Any, quiet_sandboxes: Any) -> None:
    ids = [deposit(api)["id"] for _ in range(5)]

    first = api.get("/api/v1/events", {"limit": 2}).json()
    assert first["has_more"] is True and len(first["results"]) == 2
    assert first["next"].endswith(f"after={first['results'][-1]['id']}&limit=2") or "after=" in first["next"]
    everything = all_pages(api, limit=2)
    assert [e["data"]["object"]["id"] for e in everything] == ids
    only_created = all_pages(api, type="transaction.created")
    assert len(only_created) == 5


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "x"},
        {"type": "transaction.nope"},
        {"type": ""},
        {"limit": ""},
        {"transaction": "not-a-uuid"},
        {"after": "evt_nothex"},
        {"color": "red"},
    ],
)
def test_bad_feed_queries_are_400_with_the_field_named(api: Any, query: dict[str, str]) -> None:
    response = api.get("/api/v1/events", query)
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == set(query)


def test_an_unknown_after_is_404(api: Any) -> None:
    response = api.get("/api/v1/events", {"after": "evt_" + "0" * 32})
    assert response.status_code == 404
    assert set(response.json()["error"]["fields"]) == {"after"}


def test_an_unknown_event_is_404(api: Any) -> None:
    for event_id in ("evt_" + "0" * 32, "nope", "evt_x"):
        response = api.get(f"/api/v1/events/{event_id}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_events_cannot_be_changed_or_removed(make_transaction: Callable[..., Transaction]) -> None:
    txn = make_transaction()
    with transaction.atomic():
        event = event_append(client_id=txn.client_id, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})
    with pytest.raises(TypeError):
        Event.objects.filter(pk=event.pk).update(type=EventType.TRANSACTION_FAILED)
    with pytest.raises(TypeError):
        Event.objects.filter(pk=event.pk).delete()
    stored = Event.objects.get(pk=event.pk)
    stored.type = EventType.TRANSACTION_FAILED
    with pytest.raises(TypeError):
        stored.save()


def test_an_event_is_only_written_inside_its_change_s_database_transaction(
    make_transaction: Callable[..., Transaction],
) -> None:
    txn = make_transaction()
    # pytest-django's test transaction counts as atomic; outside of one the service refuses.
    atomic = connection.in_atomic_block
    connection.in_atomic_block = False
    try:
        with pytest.raises(RuntimeError):
            event_append(client_id=txn.client_id, type=EventType.TRANSACTION_CREATED, transaction=txn, obj={})
    finally:
        connection.in_atomic_block = atomic


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_postgresql_refuses_sql_that_changes_an_event() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's")
    client, _ = api_key_create(client_name="raw-sql")
    with transaction.atomic():
        event = event_append(client_id=client.pk, type=EventType.TRANSACTION_CREATED, transaction=None, obj={})
    for statement in ("UPDATE payments_event SET type = 'x' WHERE id = %s", "DELETE FROM payments_event WHERE id = %s"):
        with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [event.pk])
    assert Event.objects.filter(pk=event.pk).exists()


class Writer(threading.Thread):
    """Appends one event in its own database transaction, and commits only when told to."""

    def __init__(self, client_id: int, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.client_id = client_id
        self.written = threading.Event()
        self.commit = threading.Event()
        self.done = threading.Event()
        self.event_id: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with transaction.atomic():
                event = event_append(
                    client_id=self.client_id, type=EventType.TRANSACTION_CREATED, transaction=None, obj={"w": self.name}
                )
                self.event_id = event.public_id
                self.written.set()
                assert self.commit.wait(30), "never told to commit"
        except BaseException as exc:  # reported to the test
            self.error = exc
            self.written.set()
        finally:
            connections.close_all()
            self.done.set()


@pytest.fixture
def feed_client(transactional_db: Any) -> Iterator[ApiClient]:
    client, _ = api_key_create(client_name="feed")
    yield client


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_writer_that_commits_late_is_not_skipped_by_a_reader_paging_meanwhile(feed_client: ApiClient) -> None:
    """Two writers take their positions A < B and commit in the order B, A while a reader pages.

    A cursor on positions alone would serve B, move past it, and never see A. The feed serves
    nothing beyond the oldest writer still running, so the reader sees A, then B.
    """
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises them)")
    a, b = Writer(feed_client.pk, "A"), Writer(feed_client.pk, "B")
    a.start()
    assert a.written.wait(30) and a.error is None
    b.start()
    assert b.written.wait(30) and b.error is None
    assert a.event_id is not None and b.event_id is not None

    served: list[str] = []
    cursor: Event | None = None

    def page() -> None:
        nonlocal cursor
        events, _ = event_feed(client=feed_client, after=cursor, limit=100)
        served.extend(e.public_id for e in events)
        if events:
            cursor = events[-1]

    b.commit.set()
    assert b.done.wait(30) and b.error is None
    page()  # B has committed, A has not: B must wait behind A
    assert served == []
    a.commit.set()
    assert a.done.wait(30) and a.error is None
    # Both are served once no older writer anywhere in the cluster is still running (on a busy
    # server that can take a moment): A first, and B never before A.
    wait_for(lambda: page() or len(served) >= 2, timeout=30, message="both events to be served")
    assert served == [a.event_id, b.event_id]
    position = {e.public_id: (e.txid, e.pk) for e in Event.objects.filter(client=feed_client)}
    # The order the writers took their positions in is the order served, though they committed the other way.
    assert position[a.event_id] < position[b.event_id]
    page()
    assert served == [a.event_id, b.event_id]


def test_a_failed_insert_leaves_no_event(api: Any, quiet_sandboxes: Any) -> None:
    """An idempotency collision rolls back the second transaction and its event with it."""
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-1"}
    body = json.dumps(DEPOSIT)
    first = api.post("/api/v1/deposits", data=body, content_type="application/json", **headers)
    again = api.post("/api/v1/deposits", data=body, content_type="application/json", **headers)
    assert first.json()["id"] == again.json()["id"]
    assert Event.objects.filter(type=EventType.TRANSACTION_CREATED).count() == 1
