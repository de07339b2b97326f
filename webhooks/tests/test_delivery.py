"""Webhook delivery over real HTTP: the stack's worker, the webhook queue's own worker, a real receiver.

The receiver (harness.Receiver) is a local HTTP server whose answers each test scripts.
The webhook dispatcher runs with a retry schedule of 0.5 s and 1 s, and a 2 s timeout (testing/stack.py).
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from harness import Receiver
from harness.receiver import DRIBBLE, HANG
from payments.models import Transaction
from testing.factories import deposit_body
from testing.stack import WEBHOOK_RETRY_SCHEDULE, WEBHOOK_TIMEOUT_SECONDS, wait_for
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.signing import standard_secret

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DEPOSIT = deposit_body(customer_id="cus_wh", payment_details=None, metadata=None)


@pytest.fixture
def live(stack: Any, webhook_worker: Any, receiver: Receiver) -> Receiver:
    return receiver


def subscribe(api: Any, url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = api.post(
        "/api/v1/webhook-endpoints",
        data=json.dumps({"url": url, "events": events or ["*"]}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return dict(response.json())


def deposit(api: Any, **changes: Any) -> str:
    response = api.post("/api/v1/deposits", data=json.dumps({**DEPOSIT, **changes}), content_type="application/json")
    assert response.status_code == 202, response.content
    return str(response.json()["id"])


def types_for(receiver: Receiver, path: str, transaction_id: str) -> list[str]:
    bodies = [item.json() for item in receiver.at(path)]
    mine = [b for b in bodies if b["data"]["object"]["id"] == transaction_id]
    return sorted({b["type"] for b in mine})


def test_a_deposit_s_events_arrive_signed_as_the_feed_shows_them(api: Any, live: Receiver) -> None:
    endpoint = subscribe(api, live.url("/all"))
    txn_id = deposit(api)

    wait_for(
        lambda: (
            types_for(live, "/all", txn_id)
            == ["transaction.completed", "transaction.created", "transaction.processing"]
        ),
        timeout=30,
        message="created, processing and completed at the receiver",
    )
    for item in live.at("/all"):
        assert item.signature_valid(endpoint["secret"])
        assert Webhook(endpoint["secret"]).verify(item.body, item.headers) == item.json()
        assert not item.signature_valid("whsec_someone_else")
        body = item.json()
        assert item.headers["Paygate-Event-Id"] == body["id"]
        assert item.headers["Content-Type"] == "application/json"
        assert api.get(f"/api/v1/events/{body['id']}").json() == body
    # Ordered by the object's updated_at, the receiver sees the transaction's history.
    bodies = sorted((i.json() for i in live.at("/all")), key=lambda b: b["data"]["object"]["updated_at"])
    assert [b["data"]["object"]["status"] for b in bodies] == ["pending", "processing", "completed"]
    event_id = bodies[-1]["id"]
    # The receiver has the event before the worker records the try: wait for the record.
    attempts = wait_for(lambda: api.get(f"/api/v1/events/{event_id}/deliveries").json()["results"], timeout=10)
    assert [(a["endpoint"], a["status_code"], a["error"]) for a in attempts] == [(endpoint["id"], 200, None)]
    assert attempts[0]["duration_ms"] >= 0


def test_a_receiver_answering_500_then_200_gets_the_event_on_a_retry(api: Any, live: Receiver) -> None:
    subscribe(api, live.on("/flaky", 500, 200), ["transaction.created"])
    txn_id = deposit(api)

    wait_for(lambda: len(live.at("/flaky")) >= 2, timeout=30, message="a retry after the 500")
    delivery = wait_for(
        lambda: WebhookDelivery.objects.filter(status="succeeded", event__transaction_id=txn_id).first(), timeout=10
    )
    assert delivery.attempt_count == 2
    assert live.at("/flaky")[0].body == live.at("/flaky")[1].body  # the same event, signed anew
    event_id = live.at("/flaky")[0].json()["id"]
    attempts = api.get(f"/api/v1/events/{event_id}/deliveries").json()["results"]
    assert [(a["status_code"], a["error"]) for a in attempts] == [(500, "http_500"), (200, None)]


def test_a_receiver_that_never_answers_2xx_ends_with_a_failed_delivery_after_the_schedule(
    api: Any, live: Receiver
) -> None:
    subscribe(api, live.on("/down", 503), ["transaction.created"])
    deposit(api)

    delivery = wait_for(lambda: WebhookDelivery.objects.filter(status="failed").first(), timeout=30)
    tries = 1 + len(WEBHOOK_RETRY_SCHEDULE.split(","))
    assert delivery.attempt_count == tries
    assert len(live.at("/down")) == tries
    assert [a.status_code for a in delivery.attempts.all()] == [503] * tries


def test_redeliver_sends_the_event_again(api: Any, live: Receiver) -> None:
    subscribe(api, live.url("/again"), ["transaction.created"])
    deposit(api)
    first = wait_for(lambda: live.at("/again"), timeout=30)[0]
    event_id = first.json()["id"]

    response = api.post(f"/api/v1/events/{event_id}/redeliver")

    assert response.status_code == 202
    assert response.json()["event"] == event_id and len(response.json()["endpoints"]) == 1
    again = wait_for(lambda: live.at("/again")[1:], timeout=30)[0]
    assert again.json() == first.json()
    assert api.get(f"/api/v1/events/{event_id}/deliveries").json()["results"][-1]["status_code"] == 200


def test_an_endpoint_that_hangs_delays_neither_another_endpoint_nor_any_payment(api: Any, live: Receiver) -> None:
    subscribe(api, live.on("/hangs", HANG), ["*"])
    subscribe(api, live.url("/fine"), ["transaction.completed"])

    ids = [deposit(api, customer_id=f"cus_h{index}") for index in range(6)]

    # Every payment completes and the healthy endpoint hears of each, while the other one still hangs.
    wait_for(
        lambda: Transaction.objects.filter(pk__in=ids, status="completed").count() == len(ids),
        timeout=60,
        message="every deposit completed",
    )
    wait_for(
        lambda: {item.json()["data"]["object"]["id"] for item in live.at("/fine")} == set(ids),
        timeout=30,
        message="every completion delivered to the healthy endpoint",
    )
    # The hanging endpoint never had more than its share of tries open at once.
    assert 1 <= live.max_open("/hangs") <= 2


def test_dribbling_endpoints_hold_at_most_their_cap_each_try_ended_by_its_deadline_and_delay_no_one_else(
    api: Any, live: Receiver
) -> None:
    """Five endpoints answer one byte every half second (each byte well within a read timeout, so only
    a deadline on the whole exchange ends them); their tries end by the 2 s deadline, at most two of
    each are open at once, and another merchant's endpoint gets every completion at its usual pace."""
    live.dribble_seconds = 0.5
    slow = [live.on(f"/dribble{index}", DRIBBLE) for index in range(5)]
    for url in slow:
        subscribe(api, url, ["*"])
    subscribe(api, live.url("/fine"), ["transaction.completed"])

    ids = [deposit(api, customer_id=f"cus_d{index}") for index in range(6)]

    def fine_arrivals() -> dict[str, float] | None:
        got = {item.json()["data"]["object"]["id"]: item.at for item in live.at("/fine")}
        return got if set(got) == set(ids) else None

    arrivals = wait_for(fine_arrivals, timeout=60, message="every completion delivered to the healthy endpoint")
    for txn in Transaction.objects.filter(pk__in=ids):
        assert arrivals[str(txn.pk)] - txn.updated_at.timestamp() < 5.0  # no queue behind the dribblers
    wait_for(lambda: len(live.hung_up) >= 10, timeout=30, message="the dribbled tries cut off")
    for path, started, ended in live.hung_up:
        assert ended - started < float(WEBHOOK_TIMEOUT_SECONDS) + 1.0, path
    # At most two tries of each open at once. The receiver notices a hang-up a moment after it
    # happened (its thread has to run), so a try counts as open until 0.25 s before it noticed.
    for index in range(5):
        tries = [(start, end) for path, start, end in live.hung_up if path == f"/dribble{index}"]
        assert tries
        assert max(sum(1 for s, e in tries if s <= at < e - 0.25) for at, _ in tries) <= 2


def test_forty_dribbling_endpoints_of_one_merchant_do_not_delay_another_merchant_s_deliveries(
    api: Any, other_api: Any, live: Receiver, settings: Any
) -> None:
    """One merchant's 40 endpoints trickle their answers (80 tries held at once, each for its whole
    deadline); another merchant's endpoint still gets each of its completions within its usual lag."""
    settings.PAYGATE_WEBHOOK_MAX_ENDPOINTS = 40
    live.dribble_seconds = 0.5
    for index in range(40):
        subscribe(api, live.on(f"/slow{index}", DRIBBLE), ["*"])
    subscribe(other_api, live.url("/theirs"), ["transaction.completed"])

    for index in range(3):
        deposit(api, customer_id=f"cus_s{index}")
    wait_for(lambda: len({item.path for item in live.received}) >= 40, timeout=30, message="every slow one held")
    theirs = [deposit(other_api, customer_id=f"cus_t{index}") for index in range(4)]

    def arrivals() -> dict[str, float] | None:
        got = {item.json()["data"]["object"]["id"]: item.at for item in live.at("/theirs")}
        return got if set(got) == set(theirs) else None

    arrived = wait_for(arrivals, timeout=60, message="the other merchant's completions delivered")
    for txn in Transaction.objects.filter(pk__in=theirs):
        assert arrived[str(txn.pk)] - txn.updated_at.timestamp() < 5.0


def test_deliveries_verify_with_the_standard_webhooks_library(api: Any, live: Receiver) -> None:
    endpoint = subscribe(api, live.url("/std"), ["transaction.created"])
    txn_id = deposit(api)
    item = wait_for(lambda: live.at("/std"), timeout=30, message="the delivery")[0]

    body = Webhook(endpoint["secret"]).verify(item.body, item.headers)

    assert body == item.json() and body["data"]["object"]["id"] == txn_id
    assert item.headers["webhook-id"] == body["id"] == item.headers["Paygate-Event-Id"]
    assert item.signature_valid(endpoint["secret"])  # and Paygate-Signature beside it
    with pytest.raises(WebhookVerificationError):
        Webhook(standard_secret("whsec_" + secrets.token_urlsafe(32))).verify(item.body, item.headers)


def test_a_secret_made_before_standard_webhooks_keeps_working(api: Any, live: Receiver) -> None:
    """Secrets used to be URL-safe base64: Paygate-Signature still checks with it as it is, and the
    Standard Webhooks signature with its spec form (the same bytes in standard base64)."""
    endpoint = subscribe(api, live.url("/old"), ["transaction.created"])
    old = "whsec_" + secrets.token_urlsafe(32)
    WebhookEndpoint.objects.filter(pk=endpoint["id"]).update(secret=old)
    deposit(api)
    item = wait_for(lambda: live.at("/old"), timeout=30, message="the delivery")[0]

    assert item.signature_valid(old)
    spec_form = "whsec_" + base64.b64encode(base64.urlsafe_b64decode(old.removeprefix("whsec_") + "=")).decode()
    assert spec_form == standard_secret(old)
    assert Webhook(spec_form).verify(item.body, item.headers) == item.json()
