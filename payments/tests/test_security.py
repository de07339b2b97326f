"""Nothing sensitive at rest, in the broker or in the logs; rotated callback secrets; hostile callbacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection

from callbacks.models import CallbackEvent
from core.signing import signature_header
from gateways.demo import DEMO_GATEWAYS, demo_callback_secret
from gateways.models import Gateway
from testing.stack import LOG_DIR, Sandbox, wait_for

IBAN = "GB82WEST12345698765432"
PAN = "4012888888881881"
SECRETS = tuple(secret for demo in DEMO_GATEWAYS for secret in (demo.api_key, demo.callback_secret))
DEPOSIT = {
    "customer_id": "cus_sec",
    "country": "GB",
    "amount": "9.99",
    "currency": "GBP",
    "payment_details": {"iban": IBAN, "card_number": PAN, "holder_name": "Jane Roe"},
}


def assert_clean(text: str, where: str) -> None:
    for needle in (IBAN, PAN, *SECRETS):
        assert needle not in text, f"{needle!r} found in {where}"


@pytest.mark.integration
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_no_payment_data_or_secret_in_the_database_dump_the_broker_or_the_logs(
    api: Any, stack: dict[str, Sandbox]
) -> None:
    from celery.signals import before_task_publish

    # Every command Redis receives (the broker's, or the cache's beside RabbitMQ), and every task
    # message this process publishes (the web's, whatever the broker).
    published: list[str] = []

    def capture(sender: Any = None, body: Any = None, headers: Any = None, **kwargs: Any) -> None:
        published.append(json.dumps([sender, body, headers], default=str))

    before_task_publish.connect(capture, weak=False)
    monitor = subprocess.Popen(
        [shutil.which("redis-cli") or "redis-cli", "-u", settings.CACHES["default"]["LOCATION"], "monitor"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: monitor.stdout and monitor.stdout.readline().strip() == "OK", message="redis monitor")
        response = api.post("/api/v1/deposits", data=json.dumps(DEPOSIT), content_type="application/json")
        txn_id = response.json()["id"]
        wait_for(
            lambda: api.get(f"/api/v1/transactions/{txn_id}").json()["status"] == "completed",
            message="the deposit to complete",
        )
        wait_for(lambda: CallbackEvent.objects.filter(result="applied").exists())
    finally:
        before_task_publish.disconnect(capture)
        monitor.terminate()
        redis_traffic, _ = monitor.communicate(timeout=10)
    messages = "\n".join(published)
    assert "process_transaction" in messages and txn_id in messages  # we saw the messages
    if settings.CELERY_BROKER_URL.startswith("redis"):
        assert "process_transaction" in redis_traffic and txn_id in redis_traffic  # ...and Redis did
    assert_clean(messages, "the task messages")
    assert_clean(redis_traffic, "the Redis traffic")

    dump = subprocess.run(
        [
            "pg_dump",
            "--data-only",
            "-h",
            str(connection.settings_dict["HOST"] or "127.0.0.1"),
            "-p",
            str(connection.settings_dict["PORT"] or 5432),
            "-U",
            str(connection.settings_dict["USER"]),
            str(connection.settings_dict["NAME"]),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert txn_id in dump  # the dump has the transaction...
    assert_clean(dump, "pg_dump")  # ...but not its payment details or the gateway credentials

    assert_clean((LOG_DIR / "worker.log").read_text(), "the worker's log")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_callbacks_signed_with_the_previous_secret_work_during_a_changeover(
    api: Any, stack: dict[str, Sandbox], live_server: Any
) -> None:
    # The gateway still signs with the demo secret; we already have a new one.
    acmepay = Gateway.objects.get(code="acmepay")
    acmepay.previous_callback_secret = acmepay.callback_secret
    acmepay.callback_secret = "the-new-secret"
    acmepay.save()
    txn_id = api.post(
        "/api/v1/deposits",
        data=json.dumps({**DEPOSIT, "country": "DE", "currency": "EUR"}),
        content_type="application/json",
    ).json()["id"]
    wait_for(lambda: api.get(f"/api/v1/transactions/{txn_id}").json()["status"] == "completed")
    assert CallbackEvent.objects.get().signature == CallbackEvent.Signature.PREVIOUS
    # Once the changeover is finished, the old secret is refused.
    acmepay.previous_callback_secret = ""
    acmepay.save()
    body = json.dumps({"event_id": "evt_x", "payment_id": "p", "reference": "r", "status": "completed"}).encode()
    old = signature_header(secret=demo_callback_secret("acmepay"), body=body)
    response = requests.post(
        f"{live_server.url}/api/v1/callbacks/acmepay",
        data=body,
        timeout=5,
        headers={"X-Signature": old, "Content-Type": "application/json"},
    )
    assert response.status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "signature_missing"),
        ("garbage", "signature_malformed"),
        ("t=abc,v1=00", "signature_malformed"),
        ("t=1,v1=00", "signature_expired"),
        (f"t={int(time.time()) + 3600},v1=00", "signature_expired"),
        (f"t={int(time.time())},v1=00", "signature_invalid"),
    ],
    ids=["missing", "garbage", "bad-timestamp", "old", "future", "wrong"],
)
def test_unsigned_or_badly_signed_callbacks_are_401_and_store_nothing(
    client: Any, header: str | None, code: str, demo: None
) -> None:
    extra = {"HTTP_X_SIGNATURE": header} if header else {}
    response = client.post(
        "/api/v1/callbacks/acmepay", data=b'{"event_id": "e"}', content_type="application/json", **extra
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert CallbackEvent.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"event_id": 1, "reference": "r", "status": "completed"}',
        b'{"event_id": "e", "reference": "r", "status": "paid"}',
        b'{"a":' * 100 + b"1" + b"}" * 100,
    ],
    ids=["garbage", "list", "int-event-id", "unknown-status", "deep"],
)
def test_malformed_signed_callbacks_are_400_and_kept_flagged_as_evidence(client: Any, body: bytes, demo: None) -> None:
    header = signature_header(secret=demo_callback_secret("acmepay"), body=body)
    response = client.post(
        "/api/v1/callbacks/acmepay", data=body, content_type="application/json", HTTP_X_SIGNATURE=header
    )
    assert response.status_code == 400, response.content
    event = CallbackEvent.objects.get()
    assert (event.result, event.flag_reason, event.raw_body) == ("flagged", "malformed_callback", body.decode())
    assert event.transaction_id is None


def test_celery_messages_carry_ids_only() -> None:
    """Every task's arguments are ids: nothing a message could leak."""
    import inspect

    from paygate.celery import app

    app.loader.import_default_modules()
    ours = {
        name: task for name, task in app.tasks.items() if name.split(".")[0] in {"payments", "callbacks", "gateways"}
    }
    assert {"payments.process_transaction", "callbacks.apply_event", "gateways.check_health"} <= set(ours)
    for name, task in ours.items():
        params = list(inspect.signature(task.run).parameters)
        assert all(p.endswith("_id") or p.endswith("_pk") for p in params), (name, params)


@pytest.mark.django_db
def test_signature_fields_in_any_order(client: Any, demo: None) -> None:
    body = b'{"event_id": "evt_order", "payment_id": "p", "reference": "not-ours", "status": "completed"}'
    t, v1 = signature_header(secret=demo_callback_secret("acmepay"), body=body).split(",")
    response = client.post(
        "/api/v1/callbacks/acmepay", data=body, content_type="application/json", HTTP_X_SIGNATURE=f"{v1},{t}"
    )
    assert response.status_code == 200, response.content
    assert CallbackEvent.objects.get().signature_timestamp == int(t.partition("=")[2])
