"""What /metrics answers the on-call questions with: the scrape-time gauges and the worker's series."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from testing.metrics import Series, sample, scrape
from testing.stack import Sandbox, wait_for


@pytest.mark.django_db
def test_routes_available_per_country_follow_health_and_breakers(client: Any, demo: None) -> None:
    from gateways.breaker import breaker_close, breaker_force_open
    from gateways.models import Gateway

    series = scrape(client)
    assert sample(series, "paygate_country_routes", country="DE", type="deposit") == 2
    assert sample(series, "paygate_country_available_routes", country="DE", type="withdrawal") == 2
    assert sample(series, "paygate_country_available_routes", country="BR", type="deposit") == 1

    Gateway.objects.filter(code="soapbank").update(health_status=Gateway.Health.UNHEALTHY)
    acmepay = Gateway.objects.get(code="acmepay")
    breaker_force_open(acmepay.pk)
    try:
        series = scrape(client)
    finally:
        breaker_close(acmepay.pk)
    # BR has soapbank only; DE has acmepay (breaker open) and soapbank (unhealthy); GB keeps globex.
    assert sample(series, "paygate_country_available_routes", country="BR", type="deposit") == 0
    assert sample(series, "paygate_country_available_routes", country="DE", type="deposit") == 0
    assert sample(series, "paygate_country_available_routes", country="GB", type="deposit") == 1
    assert sample(series, "paygate_country_routes", country="DE", type="deposit") == 2
    assert sample(series, "paygate_gateway_healthy", gateway="soapbank", status="unhealthy") == 0
    assert sample(series, "paygate_gateway_breaker_open", gateway="acmepay") == 1


@pytest.mark.django_db
def test_waiting_transactions_and_unapplied_callbacks_are_counted(client: Any, make_transaction: Any) -> None:
    from callbacks.models import CallbackEvent
    from gateways.models import Gateway
    from payments.models import TransactionStatus

    make_transaction()
    make_transaction()
    make_transaction(status=TransactionStatus.PROCESSING)
    make_transaction(status=TransactionStatus.COMPLETED)
    gateway = Gateway.objects.get(code="acmepay")
    common = {"gateway": gateway, "raw_body": "{}", "signature": "current", "signature_timestamp": 0}
    CallbackEvent.objects.create(event_id="e1", **common)
    CallbackEvent.objects.create(event_id="e2", result=CallbackEvent.Result.APPLIED, **common)
    series = scrape(client)
    assert sample(series, "paygate_transactions_waiting", status="pending") == 2
    assert sample(series, "paygate_transactions_waiting", status="processing") == 1
    assert sample(series, "paygate_callbacks_unapplied") == 1
    assert (sample(series, "paygate_callback_oldest_unapplied_age_seconds") or -1) >= 0


@pytest.mark.django_db
def test_periodic_tasks_export_their_interval(client: Any, settings: Any) -> None:
    series = scrape(client)
    assert sample(series, "paygate_periodic_task_interval_seconds", task="payments.sweep_due") == int(
        settings.PAYGATE_SWEEP_INTERVAL_SECONDS
    )
    assert sample(series, "paygate_periodic_task_interval_seconds", task="callbacks.sweep_unapplied") == 30


def test_the_admin_dashboard_needs_no_prometheus(admin_client: Any, demo: None) -> None:
    """The embedded default's view: the Gateway dashboard reads the database, not Prometheus."""

    response = admin_client.get("/admin/dashboard/")
    assert response.status_code == 200
    assert b"acmepay" in response.content


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_worker_reports_waits_payments_queues_and_sweeps(api: Any, client: Any, stack: dict[str, Sandbox]) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from ops.schedule import periodic_tasks_ensure
    from payments.tasks import sweep_due

    # The schedule's rows come from a migration, which an earlier test's flush may have emptied.
    periodic_tasks_ensure(periodic_task_model=PeriodicTask, interval_model=IntervalSchedule)
    before = scrape(client)
    response = api.post(
        "/api/v1/deposits",
        data=json.dumps({"customer_id": "cus_m", "country": "DE", "amount": "12.00", "currency": "EUR"}),
        content_type="application/json",
    )
    assert response.status_code == 202
    txn_id = response.json()["id"]
    wait_for(lambda: api.get(f"/api/v1/transactions/{txn_id}").json()["status"] == "completed")
    sweep_due.delay()
    started = time.time()

    def delta(name: str, **labels: str) -> float:
        return (sample(after, name, **labels) or 0) - (sample(before, name, **labels) or 0)

    def reported() -> Series | None:
        # The count must move: an earlier test's sweep in the same worker leaves it non-zero.
        series = scrape(client)
        swept = sample(series, "paygate_periodic_task_last_success_timestamp_seconds", task="payments.sweep_due")
        waits = {"queue": "celery", "task": "payments.sweep_due"}
        ran = (sample(series, "paygate_celery_task_wait_seconds_count", **waits) or 0) - (
            sample(before, "paygate_celery_task_wait_seconds_count", **waits) or 0
        )
        return series if swept is not None and swept >= started - 1 and ran >= 1 else None

    after = wait_for(reported, message="the sweep's start and success in /metrics")

    payments = {"gateway": "acmepay", "country": "DE", "outcome": "accepted"}
    assert delta("paygate_gateway_payment_seconds_count", **payments) == 1
    assert delta("paygate_gateway_payment_seconds_bucket", **payments, le="+Inf") == 1
    assert delta("paygate_celery_task_wait_seconds_count", queue="celery", task="payments.process_transaction") >= 1
    assert delta("paygate_celery_task_wait_seconds_count", queue="celery", task="payments.sweep_due") == 1
    consumed = sample(after, "paygate_celery_queue_last_consumed_timestamp_seconds", queue="celery")
    assert consumed is not None and consumed >= started - 10
    assert sample(after, "paygate_celery_queue_length", queue="celery") is not None


@pytest.mark.django_db
def test_security_gauges_count_admin_lockouts_and_refunds_needing_review(client: Any, make_transaction: Any) -> None:
    from axes.models import AccessAttempt
    from django.conf import settings
    from django.utils import timezone

    from payments.models import Refund

    series = scrape(client)
    assert sample(series, "paygate_admin_lockouts") == 0
    assert sample(series, "paygate_refunds_needing_review") == 0

    AccessAttempt.objects.create(
        username="ops",
        ip_address="203.0.113.9",
        failures_since_start=settings.AXES_FAILURE_LIMIT,
        attempt_time=timezone.now(),
        user_agent="",
        get_data="",
        post_data="",
        http_accept="",
        path_info="",
    )
    from gateways.models import Gateway

    txn = make_transaction(status="completed", gateway=Gateway.objects.get(code="acmepay"))
    Refund.objects.create(
        client=txn.client,
        transaction=txn,
        gateway_id=txn.gateway_id,
        amount=1,
        currency="EUR",
        status="processing",
        needs_review=True,
    )
    Refund.objects.create(
        client=txn.client,
        transaction=txn,
        gateway_id=txn.gateway_id,
        amount=1,
        currency="EUR",
        status="failed",
        failure_reason="declined",
        needs_review=True,
    )

    series = scrape(client)
    assert sample(series, "paygate_admin_lockouts") == 1
    assert sample(series, "paygate_refunds_needing_review") == 1
