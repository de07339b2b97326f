"""Card and bank data at rest and on display: keyed fingerprints, the masking rule, no
security codes after the end, and the retention purge."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from core.logs import redact
from core.masking import mask_text
from payments.masking import is_sensitive_auth_key, mask_details
from payments.models import Transaction, TransactionStatus
from payments.services import (
    TransactionInput,
    payment_details_purge,
    transaction_create,
    transaction_lock,
    transaction_transition,
)
from payments.tasks import purge_payment_details
from testing.factories import IBAN

PAN = "4111111111111111"
DETAILS = {
    "card_number": PAN,
    "cvv": "123",
    "holder_name": "Jane Roe",
    "routing_number": "021000021",
    "account_number": "1234567890",
}
DEPOSIT = {
    "customer_id": "cus_42",
    "country": "DE",
    "amount": "25.00",
    "currency": "EUR",
    "payment_details": DETAILS,
    "metadata": {"order": "A-1001"},
}
KEY_A = "fingerprint-key-a-0123456789abcdefghijklmnop"
KEY_B = "fingerprint-key-b-qrstuvwxyz9876543210ABCDEF"


def post(api: Any, body: dict[str, Any], **headers: str) -> Any:
    return api.post("/api/v1/deposits", data=json.dumps(body), content_type="application/json", **headers)


def _input(**changes: Any) -> TransactionInput:
    fields: dict[str, Any] = {
        "type": "deposit",
        "customer_id": "cus_42",
        "country": "DE",
        "amount": Decimal("25.00"),
        "currency": "EUR",
        "payment_details": dict(DETAILS),
        "metadata": {},
    }
    return TransactionInput(**{**fields, **changes})


# --- 1. The idempotency fingerprint is keyed ---------------------------------------------------


@pytest.mark.django_db
def test_the_fingerprint_is_an_hmac_under_the_fingerprint_key_not_a_plain_hash(demo: None, settings: Any) -> None:
    from payments.services import api_key_create

    settings.PAYGATE_FINGERPRINT_KEYS = [KEY_A]
    client, _ = api_key_create(client_name="m")
    data = _input()
    txn = transaction_create(client=client, data=data, idempotency_key="k1").transaction

    stored = Transaction.objects.get(pk=txn.pk).request_hash
    assert stored != hashlib.sha256(data.canonical()).hexdigest()
    assert stored == hmac.new(KEY_A.encode(), data.canonical(), hashlib.sha256).hexdigest()


@pytest.mark.django_db
def test_a_replay_still_replays_after_a_key_rotation_and_conflicts_once_the_key_is_gone(
    demo: None, api: Any, settings: Any
) -> None:
    settings.PAYGATE_FINGERPRINT_KEYS = [KEY_A]
    first = post(api, DEPOSIT, HTTP_IDEMPOTENCY_KEY="rot-1")
    assert first.status_code == 202

    settings.PAYGATE_FINGERPRINT_KEYS = [KEY_B, KEY_A]  # rotated: the old key still verifies
    replay = post(api, DEPOSIT, HTTP_IDEMPOTENCY_KEY="rot-1")
    assert replay.status_code == 202 and replay["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    assert post(api, {**DEPOSIT, "amount": "26.00"}, HTTP_IDEMPOTENCY_KEY="rot-1").status_code == 409

    settings.PAYGATE_FINGERPRINT_KEYS = [KEY_B]  # the old key retired: nothing verifies it any more
    assert post(api, DEPOSIT, HTTP_IDEMPOTENCY_KEY="rot-1").status_code == 409


@pytest.mark.django_db
def test_neither_the_api_nor_the_admin_shows_the_fingerprint(demo: None, api: Any, client: Any) -> None:
    created = post(api, DEPOSIT, HTTP_IDEMPOTENCY_KEY="show-1").json()
    txn = Transaction.objects.get(pk=created["id"])
    assert len(txn.request_hash) == 64
    assert txn.request_hash not in json.dumps(api.get(f"/api/v1/transactions/{txn.pk}").json())

    client.force_login(get_user_model().objects.create_superuser("ops", "", "pw-for-tests-only"))
    page = client.get(reverse("admin:payments_transaction_change", args=[txn.pk])).content.decode()
    assert txn.request_hash not in page and "request hash" not in page.lower()


@pytest.mark.django_db(transaction=True)
def test_the_migration_leaves_no_unkeyed_fingerprint_and_no_security_code(
    make_transaction: Callable[..., Transaction], settings: Any
) -> None:
    settings.PAYGATE_FINGERPRINT_KEYS = [KEY_A]
    # The rows are written by today's models, then the schema goes back to before the migration
    # (later migrations only add what these rows do not use); the old hashes are written there.
    data = _input(amount=Decimal("5"), metadata={"order": "A-1"})
    txn = make_transaction(
        payment_details=data.payment_details,
        metadata=data.metadata,
        idempotency_key="mig-1",
        status=TransactionStatus.COMPLETED,
    )
    txn.customer.reference = "cus_42"
    txn.customer.save()
    other = make_transaction(idempotency_key="mig-2", payment_details={"iban": IBAN})
    pending = make_transaction(idempotency_key="mig-3", payment_details={"cvv": "999"})
    executor = MigrationExecutor(connection)
    executor.migrate([("payments", "0003_transaction_details_purged_at")])
    unkeyed = hashlib.sha256(data.canonical()).hexdigest()
    Transaction.objects.filter(pk=txn.pk).update(request_hash=unkeyed)
    # A row whose request no longer gives its hash back cannot be re-keyed: its hash goes.
    Transaction.objects.filter(pk=other.pk).update(request_hash=hashlib.sha256(b"something else").hexdigest())

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    txn.refresh_from_db()
    assert txn.request_hash == hmac.new(KEY_A.encode(), data.canonical(), hashlib.sha256).hexdigest()
    assert "cvv" not in txn.payment_details and txn.payment_details["card_number"] == PAN
    other.refresh_from_db()
    assert other.request_hash == ""
    pending.refresh_from_db()
    assert pending.payment_details == {"cvv": "999"}  # not final yet: a failover may still need it
    hashes = Transaction.objects.exclude(request_hash="").values_list("request_hash", flat=True)
    assert unkeyed not in hashes


# --- 3. Masking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        (PAN, "4111************1111"),
        ("DE89370400440532013000", "DE89************3000"),
        ("1234567890123", "1234************0123"),
        ("123456789012", "********9012"),
        ("1234567890", "********890"),
        ("021000021", "********021"),
        ("1234567", "********67"),
        ("123456", "********"),
        ("123", "********"),
        ("", "********"),
    ],
    ids=["pan", "iban", "13", "12", "account-10", "routing-9", "7", "6", "3", "empty"],
)
def test_mask_text_shows_at_most_a_third_of_short_values_and_nothing_under_seven(value: str, masked: str) -> None:
    assert mask_text(value) == masked
    shown = masked.replace("*", "")
    if len(value) < 13:
        assert len(shown) <= len(value) // 3


@pytest.mark.django_db
def test_the_api_and_the_admin_mask_short_bank_numbers_by_the_rule(demo: None, api: Any, client: Any) -> None:
    body = post(api, DEPOSIT).json()
    details = body["payment_details"]
    assert details["routing_number"] == "********021"
    assert details["account_number"] == "********890"
    assert details["card_number"] == "4111************1111"

    client.force_login(get_user_model().objects.create_superuser("ops", "", "pw-for-tests-only"))
    page = client.get(reverse("admin:payments_transaction_change", args=[body["id"]])).content.decode()
    assert "********021" in page and "********890" in page
    assert "02100002" not in page and "23456789" not in page


@pytest.mark.parametrize(
    ("text", "hidden", "shown"),
    [
        ('details {"account_number": "1234567890"}', "4567890", "********890"),
        ("details {'routing_number': '021000021'}", "1000021", "********021"),
        ("account_number=1234567890 sent", "4567890", "account_number=********890"),
        ('{"cvv": "123", "pin": "4321"}', "4321", "[REDACTED]"),
    ],
    ids=["json", "python-repr", "key-value", "security-code"],
)
def test_the_log_redactor_masks_bank_numbers_by_the_same_rule(text: str, hidden: str, shown: str) -> None:
    redacted = redact(text)
    assert hidden not in redacted and shown in redacted


# --- 12. No security codes after the end; retention ----------------------------------------------


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("cvv", True),
        ("CVV2", True),
        ("cvc", True),
        ("Cvc2", True),
        ("cid", True),
        ("pin", True),
        ("PIN_block", True),
        ("track", True),
        ("Track1", True),
        ("track2", True),
        ("card_cvv", True),
        ("cardCvc", True),
        ("security_code", True),
        ("tracking_number", False),
        ("iban", False),
        ("shipping_method", False),
        ("card_number", False),
    ],
)
def test_sensitive_authentication_keys_match_case_insensitively(key: str, sensitive: bool) -> None:
    assert is_sensitive_auth_key(key) is sensitive


def test_the_masked_view_omits_security_codes_at_any_depth() -> None:
    masked = mask_details({"cvv": "123", "card": {"CVC2": "456", "number": PAN, "Track2": ";4111=2512?"}})
    assert masked == {"card": {"number": "4111************1111"}}


@pytest.mark.django_db
def test_the_api_never_shows_a_security_code_not_even_masked(demo: None, api: Any) -> None:
    body = post(api, {**DEPOSIT, "payment_details": {**DETAILS, "PIN": "4321", "track2": ";4111=2512?"}}).json()
    assert body["status"] == "pending"
    assert set(body["payment_details"]) == {"card_number", "holder_name", "routing_number", "account_number"}
    listed = api.get("/api/v1/transactions").json()["results"][0]["payment_details"]
    assert "cvv" not in listed and "PIN" not in listed and "track2" not in listed
    # Stored whole until the transaction is final: a failover may still need them.
    stored = Transaction.objects.get(pk=body["id"]).payment_details
    assert (stored["cvv"], stored["PIN"]) == ("123", "4321")


@pytest.mark.django_db
@pytest.mark.parametrize("final", ["completed", "failed"])
def test_security_codes_are_dropped_from_storage_when_the_transaction_becomes_final(
    make_transaction: Callable[..., Transaction], final: str
) -> None:
    from django.db import transaction as db_transaction

    details = {**DETAILS, "nested": {"Cvc2": "456", "ref": "r-1"}}
    txn = make_transaction(payment_details=details)
    with db_transaction.atomic():
        locked = transaction_lock(txn.pk)
        transaction_transition(locked, to=TransactionStatus.PROCESSING)
    assert Transaction.objects.get(pk=txn.pk).payment_details == details  # not final: kept

    with db_transaction.atomic():
        locked = transaction_lock(txn.pk)
        transaction_transition(locked, to=final, failure_reason="gateway_failed" if final == "failed" else None)
    stored = Transaction.objects.get(pk=txn.pk).payment_details
    assert "cvv" not in stored and stored["nested"] == {"ref": "r-1"}
    assert stored["card_number"] == PAN and stored["account_number"] == "1234567890"


@pytest.mark.django_db
def test_the_purge_keeps_only_the_masked_details_of_final_transactions_past_the_retention(
    make_transaction: Callable[..., Transaction], settings: Any
) -> None:
    from payments.metrics import PAYMENT_DETAILS_PURGED

    settings.PAYGATE_PAYMENT_DETAILS_RETENTION_DAYS = 30
    now = timezone.now()
    details = {k: v for k, v in DETAILS.items() if k != "cvv"}
    old = make_transaction(payment_details=details, status="completed", finished_at=now - timedelta(days=31))
    recent = make_transaction(payment_details=details, status="failed", finished_at=now - timedelta(days=29))
    open_ = make_transaction(payment_details=details, status="processing")
    before = PAYMENT_DETAILS_PURGED._value.get()

    assert payment_details_purge(now=now) == 1
    assert payment_details_purge(now=now) == 0  # done once

    old.refresh_from_db()
    assert old.details_purged_at == now
    assert old.payment_details == {
        "card_number": "4111************1111",
        "holder_name": "J*** R**",
        "routing_number": "********021",
        "account_number": "********890",
    }
    assert Transaction.objects.get(pk=recent.pk).payment_details == details
    assert Transaction.objects.get(pk=open_.pk).payment_details == details
    assert PAYMENT_DETAILS_PURGED._value.get() - before == 1


@pytest.mark.django_db
def test_a_purged_transaction_reads_as_before_in_the_api(demo: None, api: Any, settings: Any) -> None:
    body = post(api, {**DEPOSIT, "payment_details": {k: v for k, v in DETAILS.items() if k != "cvv"}}).json()
    Transaction.objects.filter(pk=body["id"]).update(
        status="completed", finished_at=timezone.now() - timedelta(days=400)
    )
    assert purge_payment_details() == 1

    after = api.get(f"/api/v1/transactions/{body['id']}").json()
    assert after["payment_details"] == body["payment_details"]
    stored = Transaction.objects.get(pk=body["id"]).payment_details
    assert PAN not in json.dumps(stored) and "1234567890" not in json.dumps(stored)


@pytest.mark.django_db
def test_the_purge_is_a_periodic_task_after_migrate() -> None:
    task = PeriodicTask.objects.get(task="payments.purge_payment_details")
    assert task.enabled and (task.interval.every, task.interval.period) == (3600, "seconds")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_beat_purges_expired_details_on_the_worker_and_counts_them_in_metrics(
    stack: dict[str, Any], live_server: Any, client: Any, make_transaction: Callable[..., Transaction]
) -> None:
    from django_celery_beat.models import IntervalSchedule

    from testing.metrics import scrape, total
    from testing.stack import celery_beat, wait_for, worker_env

    # The worker runs with the default retention (90 days).
    old = make_transaction(
        payment_details={"account_number": "1234567890"},
        status="completed",
        finished_at=timezone.now() - timedelta(days=91),
    )
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    # Created by migrate, but an earlier transactional test may have flushed it.
    PeriodicTask.objects.update_or_create(
        name="Purge expired payment details",
        defaults={"task": "payments.purge_payment_details", "interval": every_second, "enabled": True},
    )
    before = total(scrape(client), "paygate_payment_details_purged_total")
    beat = celery_beat(worker_env(live_server.url)).start()
    try:
        wait_for(
            lambda: Transaction.objects.filter(pk=old.pk, details_purged_at__isnull=False).exists(),
            timeout=30,
            message="the purge to run",
        )
    finally:
        beat.stop()
    assert Transaction.objects.get(pk=old.pk).payment_details == {"account_number": "********890"}
    wait_for(
        lambda: total(scrape(client), "paygate_payment_details_purged_total") - before >= 1,
        message="the purge in /metrics",
    )
