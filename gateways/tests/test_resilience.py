"""Health checks on celery-beat, the shared circuit breaker, recovery sweeps, routing edits."""

from __future__ import annotations

import functools
import json
import shutil
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

import testing.api
from gateways.breaker import BreakerState, breaker_state
from gateways.models import Country, Gateway, GatewayRoute
from harness import free_port
from payments.models import Transaction
from payments.tasks import sweep_due
from testing.factories import IBAN, deposit_body, routing_fields
from testing.stack import LOG_DIR, ROOT, Process, Sandbox, celery_beat, celery_worker, wait_for, worker_env

DEPOSIT = deposit_body(customer_id="cus_7", amount="12.00", payment_details={"iban": IBAN}, metadata=None)
FINAL = {"completed", "failed"}


create = functools.partial(testing.api.create, body=DEPOSIT)


def wait_final(api: Any, txn_id: str, statuses: set[str] = FINAL, timeout: float = 30) -> dict[str, Any]:
    return wait_for(
        lambda: (b := api.get(f"/api/v1/transactions/{txn_id}").json())["status"] in statuses and b,
        timeout=timeout,
        message=f"{txn_id} to reach {statuses}",
    )


def gateway(code: str) -> Gateway:
    return Gateway.objects.get(code=code)


def every(seconds: int, name: str, task: str) -> None:
    schedule, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(name=name, defaults={"task": task, "interval": schedule, "enabled": True})


@pytest.mark.django_db
def test_periodic_tasks_exist_after_migrate() -> None:
    tasks = set(PeriodicTask.objects.filter(enabled=True).values_list("task", flat=True))
    assert {"gateways.check_health_all", "payments.sweep_due", "callbacks.sweep_unapplied"} <= tasks
    health = PeriodicTask.objects.get(task="gateways.check_health_all")
    assert (health.interval.every, health.interval.period) == (10, "seconds")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_beat_marks_a_down_gateway_unhealthy_and_a_recovered_one_healthy(
    stack: dict[str, Sandbox], live_server: Any
) -> None:
    every(1, "fast health checks", "gateways.check_health_all")
    beat = celery_beat(worker_env(live_server.url)).start()
    try:
        wait_for(lambda: gateway("acmepay").health_status == Gateway.Health.HEALTHY, timeout=30, message="first check")
        stack["acmepay"].mode("down")
        wait_for(lambda: gateway("acmepay").health_status == Gateway.Health.UNHEALTHY, timeout=30, message="unhealthy")
        assert gateway("soapbank").health_status == Gateway.Health.HEALTHY
        stack["acmepay"].mode("ok")
        wait_for(
            lambda: gateway("acmepay").health_status == Gateway.Health.HEALTHY, timeout=30, message="healthy again"
        )
        assert gateway("acmepay").last_check_latency_ms is not None
    finally:
        beat.stop()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_unhealthy_gateway_gets_no_traffic(api: Any, stack: dict[str, Sandbox]) -> None:
    Gateway.objects.filter(code="acmepay").update(health_status=Gateway.Health.UNHEALTHY)
    done = wait_final(api, create(api)["id"])
    assert [a["gateway"] for a in done["attempts"]] == ["soapbank"]
    assert stack["acmepay"].payments() == []


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_technical_faults_open_the_breaker_and_routing_skips_the_gateway(
    api: Any, stack: dict[str, Sandbox], settings: Any
) -> None:
    stack["acmepay"].mode("down")
    acmepay = gateway("acmepay").pk
    for _ in range(settings.PAYGATE_BREAKER_FAILURE_THRESHOLD):
        done = wait_final(api, create(api)["id"])
        assert [a["gateway"] for a in done["attempts"]] == ["acmepay", "soapbank"]
    assert breaker_state(acmepay) == BreakerState.OPEN
    # Health checks would still call acmepay healthy-ish; the breaker alone keeps traffic away.
    Gateway.objects.filter(pk=acmepay).update(health_status=Gateway.Health.HEALTHY)
    done = wait_final(api, create(api)["id"])
    assert [a["gateway"] for a in done["attempts"]] == ["soapbank"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_decline_storm_leaves_the_breaker_closed(api: Any, stack: dict[str, Sandbox], settings: Any) -> None:
    stack["acmepay"].mode("decline")
    for _ in range(settings.PAYGATE_BREAKER_FAILURE_THRESHOLD + 2):
        assert wait_final(api, create(api)["id"])["failure_reason"] == "declined"
    assert breaker_state(gateway("acmepay").pk) == BreakerState.CLOSED
    assert gateway("acmepay").health_status != Gateway.Health.UNHEALTHY


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_half_open_breaker_lets_a_probe_through_and_closes_on_success(
    api: Any, stack: dict[str, Sandbox], settings: Any
) -> None:
    from django.core.cache import cache

    acmepay = gateway("acmepay").pk
    # Opened a while ago, cool-down over: half-open.
    cache.set(f"breaker:{acmepay}:open_until", timezone.now().timestamp() - 1, timeout=None)
    assert breaker_state(acmepay) == BreakerState.HALF_OPEN
    done = wait_final(api, create(api)["id"])
    assert [a["gateway"] for a in done["attempts"]] == ["acmepay"]
    assert breaker_state(acmepay) == BreakerState.CLOSED


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_admin_priority_edit_changes_where_the_next_transaction_goes(
    api: Any, client: Any, stack: dict[str, Sandbox]
) -> None:
    assert wait_final(api, create(api)["id"])["gateway"] == "acmepay"
    client.force_login(get_user_model().objects.create_superuser("ops", "", "pw-for-tests-only"))
    germany = GatewayRoute.objects.get(country__code="DE", gateway__code="acmepay").country
    url = reverse("admin:gateways_country_change", args=[germany.pk])
    routes = list(GatewayRoute.objects.filter(country=germany).order_by("id"))
    form = {
        "code": "DE",
        "name": germany.name,
        "currency": "EUR",
        **routing_fields(germany),
        "routes-TOTAL_FORMS": str(len(routes)),
        "routes-INITIAL_FORMS": str(len(routes)),
        "routes-MIN_NUM_FORMS": "0",
        "routes-MAX_NUM_FORMS": "1000",
    }
    for i, route in enumerate(routes):
        form.update(
            {
                f"routes-{i}-id": str(route.pk),
                f"routes-{i}-country": str(germany.pk),
                f"routes-{i}-gateway": str(route.gateway_id),
                f"routes-{i}-priority": "1" if route.gateway.code == "soapbank" else "2",
                f"routes-{i}-currencies": list(route.currencies),
                f"routes-{i}-transaction_types": list(route.transaction_types),
                f"routes-{i}-is_active": "on",
            }
        )
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert wait_final(api, create(api)["id"])["gateway"] == "soapbank"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_disabled_route_is_skipped_at_once(api: Any, stack: dict[str, Sandbox]) -> None:
    GatewayRoute.objects.filter(country__code="DE", gateway__code="acmepay").update(is_active=False)
    assert wait_final(api, create(api)["id"])["gateway"] == "soapbank"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_processing_without_callback_is_resolved_by_look_up(api: Any, stack: dict[str, Sandbox]) -> None:
    # Our side refuses the gateway's callbacks (wrong secret), so only a look-up can finish it.
    acmepay = gateway("acmepay")
    acmepay.callback_secret = "rotated-without-telling-the-gateway"
    acmepay.save()
    txn = create(api)
    wait_final(api, txn["id"], {"processing"})
    wait_for(
        lambda: all(p["status"] == "completed" for p in stack["acmepay"].payments()),
        message="the sandbox to finish the payment",
    )
    assert api.get(f"/api/v1/transactions/{txn['id']}").json()["status"] == "processing"
    Transaction.objects.filter(pk=txn["id"]).update(next_check_at=timezone.now())
    assert sweep_due()["processing"] == 1
    done = wait_final(api, txn["id"])
    assert (done["status"], done["gateway"]) == ("completed", "acmepay")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_processing_past_the_deadline_expires_and_is_flagged(
    api: Any, stack: dict[str, Sandbox], settings: Any
) -> None:
    stack["acmepay"].mode("ok", callback="none")
    txn = create(api)
    wait_final(api, txn["id"], {"processing"})
    long_ago = timezone.now() - timedelta(seconds=settings.PAYGATE_PROCESSING_DEADLINE_SECONDS + 60)
    Transaction.objects.filter(pk=txn["id"]).update(created_at=long_ago, next_check_at=timezone.now())
    sweep_due()
    done = wait_final(api, txn["id"])
    assert (done["status"], done["failure_reason"]) == ("failed", "expired")
    assert Transaction.objects.get(pk=txn["id"]).needs_review


@pytest.mark.integration
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_transaction_committed_while_the_broker_is_down_is_processed_once_it_is_back(
    api_key: str, stack: dict[str, Sandbox], live_server: Any
) -> None:
    """A private Redis, web, worker and beat: stop Redis, make a deposit, start Redis again."""
    redis_server = shutil.which("redis-server")
    assert redis_server, "redis-server is needed for this test"
    port, web_port = free_port(), free_port()
    redis_argv = [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    redis = Process("private-redis", redis_argv, {}).start()
    env = worker_env(f"http://127.0.0.1:{web_port}")
    env.update(CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0", PAYGATE_SWEEP_GRACE_SECONDS="1")
    every(1, "fast sweep", "payments.sweep_due")
    web = Process(
        "private-web",
        [str(ROOT / "bin" / "web")],
        {**env, "PAYGATE_BIND": f"127.0.0.1:{web_port}", "WEB_CONCURRENCY": "1"},
    ).start()
    worker = celery_worker(env, name="private-worker", concurrency=1).start()
    beat = celery_beat(env, name="private-beat").start()
    base = f"http://127.0.0.1:{web_port}"
    headers = {"Authorization": f"Api-Key {api_key}"}
    try:

        def ping() -> bool:
            try:
                return requests.get(f"{base}/healthz", timeout=1).ok
            except requests.RequestException:
                return False

        wait_for(ping, timeout=30, message="private web")
        redis.stop()
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 503
        response = requests.post(f"{base}/api/v1/deposits", json=DEPOSIT, headers=headers, timeout=30)
        assert response.status_code == 202, response.text
        txn_id = response.json()["id"]
        assert Transaction.objects.get(pk=txn_id).status == "pending"
        redis = Process("private-redis", redis_argv, {}).start()
        done = wait_for(
            lambda: (
                (b := requests.get(f"{base}/api/v1/transactions/{txn_id}", headers=headers, timeout=5).json())["status"]
                in FINAL
                and b
            ),
            timeout=60,
            interval=0.5,
            message="the deposit to be processed after Redis is back",
        )
        assert (done["status"], done["gateway"]) == ("completed", "acmepay")
        assert len(stack["acmepay"].payments()) == 1
    finally:
        for process in (beat, worker, web, redis):
            process.stop()
        (LOG_DIR / "private-beat.pid").unlink(missing_ok=True)


@pytest.mark.django_db
def test_gateway_list_shows_health_breaker_and_routes(api: Any, demo: None) -> None:

    body = api.get("/api/v1/gateways").json()
    by_code = {g["code"]: g for g in body["gateways"]}
    assert set(by_code) == {"acmepay", "soapbank", "globex"}
    soapbank = by_code["soapbank"]
    assert (soapbank["data_format"], soapbank["health_status"], soapbank["breaker_state"]) == (
        "xml",
        "unknown",
        "closed",
    )
    assert {(r["country"], r["priority"]) for r in soapbank["routes"]} == {("DE", 2), ("GB", 1), ("BR", 1)}
    assert "api_key" not in json.dumps(body) and "demo-soapbank" not in json.dumps(body)


@pytest.mark.django_db
def test_gateway_list_needs_an_api_key(client: Any) -> None:
    assert client.get("/api/v1/gateways").status_code == 401


@pytest.mark.django_db
def test_under_a_backlog_the_sweep_republishes_only_what_is_overdue(settings: Any) -> None:
    from unittest import mock

    from payments.models import Customer
    from payments.services import api_key_create
    from payments.tasks import process_transaction

    settings.PAYGATE_SWEEP_BACKLOG_LIMIT = 100
    settings.PAYGATE_SWEEP_MAX_DEFER_SECONDS = 600
    Country.objects.create(code="DE", name="Germany", currency="EUR")
    client, _ = api_key_create(client_name="sweeper")
    customer = Customer.objects.create(client=client, reference="c", country_id="DE")
    now = timezone.now()

    def pending(due_seconds_ago: int) -> Transaction:
        return Transaction.objects.create(
            client=client, type="deposit", amount=5, currency="EUR", country_id="DE", customer=customer,
            next_check_at=now - timedelta(seconds=due_seconds_ago),
        )  # fmt: skip

    just_due, overdue = pending(5), pending(700)
    # The broker is the outer boundary here: its queue length is given, its publishes recorded.
    with (
        mock.patch("core.queues.pipeline_backlog", return_value=250),
        mock.patch.object(process_transaction, "apply_async") as publish,
    ):
        assert sweep_due()["pending"] == 1
        assert [list(c.kwargs["args"]) for c in publish.call_args_list] == [[str(overdue.pk)]]
    with (
        mock.patch("core.queues.pipeline_backlog", return_value=99),
        mock.patch.object(process_transaction, "apply_async") as publish,
    ):
        assert sweep_due()["pending"] == 1  # the overdue one was pushed a minute ahead when published
        assert [list(c.kwargs["args"]) for c in publish.call_args_list] == [[str(just_due.pk)]]


def test_the_backlog_is_read_from_the_broker() -> None:
    import uuid

    from core.queues import pipeline_backlog
    from paygate.celery import app

    queue = f"backlog-probe-{uuid.uuid4().hex[:8]}"
    assert pipeline_backlog(queue) == 0
    try:
        for _ in range(3):
            app.send_task("paygate.never-consumed", queue=queue)
        assert pipeline_backlog(queue) == 3
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)
