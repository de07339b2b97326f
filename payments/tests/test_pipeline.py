"""The pipeline end to end: API → broker → worker process → sandbox gateway over HTTP → signed callback."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection

from callbacks.models import CallbackEvent
from core.signing import signature_header
from gateways.demo import demo_callback_secret
from gateways.models import Gateway
from harness import free_port
from payments.models import Attempt, Transaction
from testing.api import create, fetch, wait_status
from testing.factories import DEPOSIT
from testing.stack import Sandbox, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINAL = {"completed", "failed"}


def payments_for(box: Sandbox, txn_id: str) -> list[dict[str, Any]]:
    return [p for p in box.payments() if p["transaction_id"] == txn_id]


def test_de_deposit_goes_to_acmepay_and_completes_by_callback(api: Any, stack: dict[str, Sandbox]) -> None:
    txn = create(api)
    done = wait_status(api, txn["id"], FINAL)
    assert done["status"] == "completed"
    assert done["gateway"] == "acmepay"
    [attempt] = done["attempts"]
    assert (attempt["gateway"], attempt["outcome"], attempt["error"]) == ("acmepay", "accepted", None)
    [payment] = payments_for(stack["acmepay"], txn["id"])
    # Our attempt id is the reference the gateway got, and its payment id is the gateway reference.
    assert payment["reference"] == attempt["reference"]
    assert payment["payment_id"] == done["gateway_reference"]
    assert (payment["amount"], payment["currency"], payment["type"]) == ("25.00", "EUR", "deposit")
    assert payments_for(stack["soapbank"], txn["id"]) == []
    event = CallbackEvent.objects.get(reference=attempt["reference"])
    assert event.result == CallbackEvent.Result.APPLIED and event.signature == "current"


def test_gb_deposit_goes_to_soapbank_over_soap(api: Any, stack: dict[str, Sandbox]) -> None:
    txn = create(api, country="GB", currency="GBP", amount="10.50")
    done = wait_status(api, txn["id"], FINAL)
    assert (done["status"], done["gateway"]) == ("completed", "soapbank")
    [payment] = payments_for(stack["soapbank"], txn["id"])
    assert payment["amount"] == "10.50" and payment["currency"] == "GBP"
    assert done["gateway_reference"] == payment["payment_id"]


def test_withdrawal_goes_to_globex(api: Any, stack: dict[str, Sandbox]) -> None:
    txn = create(api, "/api/v1/withdrawals", country="US", currency="USD")
    done = wait_status(api, txn["id"], FINAL)
    assert (done["status"], done["type"], done["gateway"]) == ("completed", "withdrawal", "globex")
    [payment] = payments_for(stack["globex"], txn["id"])
    assert payment["type"] == "withdrawal"


def test_failed_callback_fails_the_transaction(api: Any, stack: dict[str, Sandbox]) -> None:
    stack["acmepay"].mode("ok", callback="failed")
    done = wait_status(api, create(api)["id"], FINAL)
    assert (done["status"], done["failure_reason"], done["gateway"]) == ("failed", "gateway_failed", "acmepay")


def test_down_gateway_fails_over_to_the_next_route(api: Any, stack: dict[str, Sandbox]) -> None:
    stack["acmepay"].mode("down")
    txn = create(api)
    done = wait_status(api, txn["id"], FINAL)
    assert (done["status"], done["gateway"]) == ("completed", "soapbank")
    first, second = done["attempts"]
    assert (first["gateway"], first["outcome"], first["error"]) == ("acmepay", "error", "service_unavailable")
    assert (second["gateway"], second["outcome"]) == ("soapbank", "accepted")
    assert payments_for(stack["acmepay"], txn["id"]) == []


def test_connection_refused_fails_over(api: Any, stack: dict[str, Sandbox]) -> None:
    Gateway.objects.filter(code="acmepay").update(base_url=f"http://127.0.0.1:{free_port()}")
    done = wait_status(api, create(api)["id"], FINAL)
    assert done["gateway"] == "soapbank"
    assert [(a["gateway"], a["error"]) for a in done["attempts"]][0] == ("acmepay", "connection_refused")


def test_decline_fails_without_failover(api: Any, stack: dict[str, Sandbox]) -> None:
    stack["acmepay"].mode("decline")
    txn = create(api)
    done = wait_status(api, txn["id"], FINAL)
    assert (done["status"], done["failure_reason"]) == ("failed", "declined")
    [attempt] = done["attempts"]
    assert (attempt["gateway"], attempt["outcome"]) == ("acmepay", "declined")
    assert payments_for(stack["soapbank"], txn["id"]) == []
    assert Gateway.objects.get(code="acmepay").health_status != Gateway.Health.UNHEALTHY


def test_server_error_is_looked_up_then_fails_over(api: Any, stack: dict[str, Sandbox]) -> None:
    stack["acmepay"].mode("error")
    txn = create(api)
    done = wait_status(api, txn["id"], FINAL)
    assert (done["status"], done["gateway"]) == ("completed", "soapbank")
    first = done["attempts"][0]
    assert first["gateway"] == "acmepay" and first["outcome"] == "error"
    assert first["error"] == "server_error; not_received"
    assert payments_for(stack["acmepay"], txn["id"]) == []


def test_timeout_is_looked_up_and_stays_on_that_gateway(api: Any, stack: dict[str, Sandbox]) -> None:
    stack["acmepay"].mode("timeout")
    txn = create(api)
    done = wait_status(api, txn["id"], FINAL, timeout=40)
    assert (done["status"], done["gateway"]) == ("completed", "acmepay")
    [attempt] = done["attempts"]
    assert attempt["outcome"] == "accepted"
    assert len(payments_for(stack["acmepay"], txn["id"])) == 1
    assert payments_for(stack["soapbank"], txn["id"]) == []


def test_no_healthy_route_waits_then_proceeds(api: Any, stack: dict[str, Sandbox]) -> None:
    for code in ("acmepay", "soapbank"):
        stack[code].mode("down")
    txn = create(api)
    wait_for(
        lambda: Attempt.objects.filter(transaction_id=txn["id"]).count() >= 4,
        timeout=20,
        message="two rounds of attempts",
    )
    assert fetch(api, txn["id"])["status"] == "pending"
    stack["soapbank"].mode("ok")
    done = wait_status(api, txn["id"], FINAL)
    assert (done["status"], done["gateway"]) == ("completed", "soapbank")


def test_duplicate_callbacks_apply_once(api: Any, stack: dict[str, Sandbox]) -> None:
    stack["acmepay"].mode("ok", duplicate_callbacks=True)
    txn = create(api)
    wait_status(api, txn["id"], FINAL)
    # The second delivery carries the same event id: stored once, applied once.
    wait_for(
        lambda: all(p["callbacks_delivered"] >= 2 for p in payments_for(stack["acmepay"], txn["id"])),
        message="the sandbox to deliver the callback twice",
    )
    assert CallbackEvent.objects.filter(transaction_id=txn["id"]).count() == 1
    assert CallbackEvent.objects.get().result == CallbackEvent.Result.APPLIED


def _signed_post(
    live_server: Any,
    gateway: str,
    body: bytes,
    *,
    secret: str | None = None,
    timestamp: int | None = None,
    content_type: str = "application/json",
) -> requests.Response:
    header = signature_header(secret=secret or demo_callback_secret(gateway), body=body, timestamp=timestamp)
    return requests.post(
        f"{live_server.url}/api/v1/callbacks/{gateway}",
        data=body,
        headers={"X-Signature": header, "Content-Type": content_type},
        timeout=5,
    )


def _callback(
    attempt: Attempt, *, status: str = "completed", event_id: str = "evt_manual", payment_id: str | None = None
) -> bytes:
    attempt.refresh_from_db()
    return json.dumps(
        {
            "event_id": event_id,
            # The payment id the gateway returned, as a genuine callback names it.
            "payment_id": payment_id or attempt.gateway_payment_id or "pay_manual",
            "reference": str(attempt.pk),
            "status": status,
            "reason": None,
        }
    ).encode()


def test_forged_and_stale_callbacks_are_refused_and_change_nothing(
    api: Any, stack: dict[str, Sandbox], live_server: Any
) -> None:
    stack["acmepay"].mode("ok", callback="none")
    txn = create(api)
    processing = wait_status(api, txn["id"], {"processing"})
    attempt = Attempt.objects.get(pk=processing["attempts"][0]["reference"])
    body = _callback(attempt)
    forged = _signed_post(live_server, "acmepay", body, secret="not-the-secret")
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "signature_invalid"
    stale = _signed_post(live_server, "acmepay", body, timestamp=int(time.time()) - 301)
    assert stale.status_code == 401 and stale.json()["error"]["code"] == "signature_expired"
    unsigned = requests.post(f"{live_server.url}/api/v1/callbacks/acmepay", data=body, timeout=5)
    assert unsigned.status_code == 401
    tampered = _signed_post(live_server, "acmepay", body)
    assert tampered.status_code == 200  # the genuine one, for contrast, below
    assert CallbackEvent.objects.count() == 1
    done = wait_status(api, txn["id"], FINAL)
    assert done["status"] == "completed"


def test_callback_for_a_stale_attempt_is_flagged(api: Any, stack: dict[str, Sandbox], live_server: Any) -> None:
    stack["acmepay"].mode("error")
    stack["soapbank"].mode("ok", callback="none")
    txn = create(api)
    wait_status(api, txn["id"], {"processing"})
    stale_attempt = Attempt.objects.get(transaction_id=txn["id"], gateway__code="acmepay")
    assert _signed_post(live_server, "acmepay", _callback(stale_attempt)).status_code == 200
    event = wait_for(lambda: CallbackEvent.objects.filter(result="flagged").first(), message="flagged event")
    assert event.flag_reason == "stale_attempt"
    assert fetch(api, txn["id"])["status"] == "processing"


def test_a_signed_callback_naming_another_payment_id_is_flagged_and_the_right_one_completes(
    api: Any, stack: dict[str, Sandbox], live_server: Any
) -> None:
    stack["acmepay"].mode("ok", callback="none")
    txn = create(api)
    processing = wait_status(api, txn["id"], {"processing"})
    returned = processing["gateway_reference"]
    attempt = Attempt.objects.get(pk=processing["attempts"][0]["reference"])
    assert returned and attempt.gateway_payment_id == returned

    swapped = _callback(attempt, event_id="evt_swapped", payment_id="pay_someone_else")
    assert _signed_post(live_server, "acmepay", swapped).status_code == 200
    event = wait_for(lambda: CallbackEvent.objects.filter(event_id="evt_swapped").exclude(result="received").first())
    assert (event.result, event.flag_reason) == ("flagged", "payment_id_mismatch")
    after = fetch(api, txn["id"])
    assert (after["status"], after["gateway_reference"]) == ("processing", returned)

    assert _signed_post(live_server, "acmepay", _callback(attempt, event_id="evt_right")).status_code == 200
    done = wait_status(api, txn["id"], FINAL)
    assert (done["status"], done["gateway_reference"]) == ("completed", returned)


def test_security_codes_are_gone_from_storage_once_the_gateway_completes_the_payment(
    api: Any, stack: dict[str, Sandbox]
) -> None:
    details = {"card_number": "4111111111111111", "cvv": "123", "track2": ";4111111111111111=2512?"}
    txn = create(api, payment_details=details)
    assert set(txn["payment_details"]) == {"card_number"}
    done = wait_status(api, txn["id"], FINAL)
    assert done["status"] == "completed" and set(done["payment_details"]) == {"card_number"}
    assert Transaction.objects.get(pk=txn["id"]).payment_details == {"card_number": "4111111111111111"}


def test_late_callback_contradicting_a_final_status_is_flagged(
    api: Any, stack: dict[str, Sandbox], live_server: Any
) -> None:
    txn = create(api)
    done = wait_status(api, txn["id"], FINAL)
    attempt = Attempt.objects.get(pk=done["attempts"][0]["reference"])
    assert (
        _signed_post(live_server, "acmepay", _callback(attempt, status="failed", event_id="evt_late")).status_code
        == 200
    )
    event = wait_for(lambda: CallbackEvent.objects.filter(event_id="evt_late", result="flagged").first())
    assert event.flag_reason == "final_state_conflict"
    assert fetch(api, txn["id"])["status"] == "completed"


def test_callback_before_the_worker_records_the_accept_still_applies(
    api: Any, stack: dict[str, Sandbox], live_server: Any
) -> None:
    # The gateway answers only after our client gave up, but calls back at once: the
    # callback lands while the attempt is still `pending` in our database.
    stack["acmepay"].mode("timeout")
    txn = create(api)
    attempt = wait_for(lambda: Attempt.objects.filter(transaction_id=txn["id"]).first())
    # The payment id the gateway gave it, as its genuine callback names it (another is flagged).
    received = wait_for(lambda: payments_for(stack["acmepay"], txn["id"]))
    callback = _callback(attempt, event_id="evt_early", payment_id=received[0]["payment_id"])
    assert _signed_post(live_server, "acmepay", callback).status_code == 200
    done = wait_status(api, txn["id"], FINAL, timeout=40)
    assert (done["status"], done["gateway"]) == ("completed", "acmepay")
    assert CallbackEvent.objects.get(event_id="evt_early").result == CallbackEvent.Result.APPLIED
    assert len(done["attempts"]) == 1


def test_a_callback_the_web_could_not_apply_is_answered_and_applied_later_by_a_worker(
    api: Any, stack: dict[str, Sandbox], live_server: Any
) -> None:
    from datetime import timedelta
    from unittest import mock

    from django.db import OperationalError
    from django.utils import timezone

    from callbacks.tasks import sweep_unapplied

    stack["acmepay"].mode("ok", callback="none")
    txn = create(api)
    wait_status(api, txn["id"], {"processing"})
    attempt = Attempt.objects.get(transaction_id=txn["id"])
    # The database fails just as the web process applies the event (the live server runs in
    # this process; the worker, a process of its own, is untouched).
    with mock.patch("callbacks.services.callback_apply", side_effect=OperationalError("database went away")) as apply:
        response = _signed_post(live_server, "acmepay", _callback(attempt, event_id="evt_later"))
        # The apply runs after the answer has gone out: keep the failure in place until it has.
        wait_for(lambda: apply.call_count == 1, message="the web process to try the apply")
    assert response.status_code == 200 and response.json() == {"received": True}
    event = CallbackEvent.objects.get(event_id="evt_later")
    assert event.result == CallbackEvent.Result.RECEIVED
    assert api.get(f"/api/v1/transactions/{txn['id']}").json()["status"] == "processing"

    CallbackEvent.objects.filter(pk=event.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))
    assert sweep_unapplied() == 1
    done = wait_status(api, txn["id"], FINAL)
    assert (done["status"], done["gateway"]) == ("completed", "acmepay")
    event.refresh_from_db()
    assert event.result == CallbackEvent.Result.APPLIED


def test_xml_callback_with_an_entity_is_refused(stack: dict[str, Sandbox], live_server: Any) -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE n [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<PaymentNotification><EventId>&x;</EventId></PaymentNotification>"
    )
    response = _signed_post(live_server, "soapbank", body, content_type="application/xml")
    assert response.status_code == 400
    # Kept as evidence exactly as sent: the entity was never expanded.
    event = CallbackEvent.objects.get()
    assert (event.flag_reason, event.raw_body, event.transaction_id) == ("malformed_callback", body.decode(), None)


def test_unknown_gateway_callback_is_404(live_server: Any, stack: dict[str, Sandbox]) -> None:
    assert _signed_post(live_server, "nosuchpay", b"{}").status_code == 404


def test_concurrent_requests_with_one_idempotency_key_make_one_transaction(
    api_key: str, stack: dict[str, Sandbox], live_server: Any
) -> None:
    def send(_: int) -> requests.Response:
        return requests.post(
            f"{live_server.url}/api/v1/deposits",
            json=DEPOSIT,
            timeout=30,
            headers={"Authorization": f"Api-Key {api_key}", "Idempotency-Key": "same-key"},
        )

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(send, range(10)))
    assert [r.status_code for r in responses] == [202] * 10
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 9
    assert Transaction.objects.count() == 1


def test_two_worker_processes_drain_200_without_paying_twice(api: Any, stack: dict[str, Sandbox]) -> None:
    countries = [("DE", "EUR"), ("GB", "GBP"), ("US", "USD"), ("BR", "BRL")]
    ids = []
    for n in range(200):
        country, currency = countries[n % 4]
        path = "/api/v1/deposits" if n % 2 == 0 else "/api/v1/withdrawals"
        ids.append(create(api, path, country=country, currency=currency, amount=f"{n + 1}.00")["id"])
    wait_for(
        lambda: Transaction.objects.filter(status="completed").count() == 200,
        timeout=180,
        interval=0.5,
        message="all 200 transactions to complete",
    )
    sent = Counter(p["transaction_id"] for box in stack.values() for p in box.payments())
    assert set(sent) == set(ids)
    assert max(sent.values()) == 1
    assert all(p["requests"] == 1 for box in stack.values() for p in box.payments())


def test_embedded_default_uses_a_separate_worker_over_the_filesystem_broker(
    api: Any, stack: dict[str, Sandbox], worker_process: Any
) -> None:
    if settings.CELERY_BROKER_URL != "filesystem://":
        pytest.skip("runs on the embedded default only; the PostgreSQL + Redis run has its own check")
    assert connection.vendor == "sqlite"
    done = wait_status(api, create(api)["id"], FINAL)
    assert done["status"] == "completed"
    assert worker_process.pid != __import__("os").getpid()


@pytest.mark.services
def test_runs_on_postgresql_and_redis(api: Any, stack: dict[str, Sandbox]) -> None:
    """On PostgreSQL, with Redis as the broker and cache, or RabbitMQ as the broker and Redis as the cache."""
    assert connection.vendor == "postgresql"
    assert settings.CELERY_BROKER_URL.startswith(("redis://", "amqp://"))
    assert settings.CACHES["default"]["LOCATION"].startswith("redis://")
    assert wait_status(api, create(api)["id"], FINAL)["status"] == "completed"
