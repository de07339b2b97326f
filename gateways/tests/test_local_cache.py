"""Routes, gateways and API keys cached per process, and what makes every process drop them."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core import localcache
from gateways.models import ROUTING_CACHE, Gateway, GatewayRoute
from gateways.selectors import gateway_get, route_list
from gateways.services import demo_seed, gateway_health_record
from payments.models import API_KEYS_CACHE, ClientAPIKey
from payments.services import api_key_create

pytestmark = pytest.mark.django_db(transaction=True)

DE_DEPOSIT = {"country_code": "DE", "currency": "EUR", "transaction_type": "deposit"}


def codes() -> list[str]:
    return [route.gateway_code for route in route_list(**DE_DEPOSIT)]


def generation(name: str) -> Any:
    return localcache.cache.get(localcache._KEY_PREFIX + name)


@pytest.fixture
def seeded(transactional_db: Any) -> None:
    demo_seed()


def test_cached_routes_cost_no_query_until_another_process_changes_something(seeded: None) -> None:
    assert codes() == ["acmepay", "soapbank"]
    with CaptureQueriesContext(connection) as cached:
        assert codes() == ["acmepay", "soapbank"]
    assert len(cached) == 0

    # A write that bypasses the ORM is not seen until the generation moves, as another
    # process's commit moves it.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE gateways_gatewayroute SET priority = 0 WHERE gateway_id = "
                       "(SELECT id FROM gateways_gateway WHERE code = 'soapbank')")  # fmt: skip
    assert codes() == ["acmepay", "soapbank"]
    localcache._bump_now(ROUTING_CACHE)
    assert codes() == ["soapbank", "acmepay"]


@pytest.mark.parametrize(
    "edit",
    [
        lambda: GatewayRoute.objects.filter(gateway__code="acmepay", country__code="DE").update(is_active=False),
        lambda: Gateway.objects.filter(code="acmepay").update(is_active=False),
        lambda: Gateway.objects.get(code="acmepay").delete(),
        lambda: GatewayRoute.objects.get(gateway__code="acmepay", country__code="DE").delete(),
    ],
    ids=["queryset-update-route", "queryset-update-gateway", "delete-gateway", "delete-route"],
)
def test_every_orm_write_moves_the_shared_generation(seeded: None, edit: Any) -> None:
    assert codes() == ["acmepay", "soapbank"]
    before = generation(ROUTING_CACHE)
    edit()
    assert generation(ROUTING_CACHE) != before  # other processes will reload
    assert codes() == ["soapbank"]


def test_a_save_in_the_admin_moves_the_generation(seeded: None) -> None:
    assert codes() == ["acmepay", "soapbank"]
    before = generation(ROUTING_CACHE)
    route = GatewayRoute.objects.get(gateway__code="soapbank", country__code="DE")
    route.priority = 0
    route.save()
    assert generation(ROUTING_CACHE) != before
    assert codes() == ["soapbank", "acmepay"]


def test_health_bookkeeping_keeps_the_cache_and_a_change_of_health_drops_it(seeded: None, settings: Any) -> None:
    settings.PAYGATE_HEALTH_FAILURE_THRESHOLD = 2
    acmepay = Gateway.objects.get(code="acmepay")
    gateway_health_record(gateway_id=acmepay.pk, up=True, latency_ms=1.0)  # unknown -> healthy
    assert [r.healthy for r in route_list(**DE_DEPOSIT)] == [True, True]
    before = generation(ROUTING_CACHE)
    gateway_health_record(gateway_id=acmepay.pk, up=True, latency_ms=1.0)
    gateway_health_record(gateway_id=acmepay.pk, up=False, latency_ms=None)  # 1 of 2 failures
    assert generation(ROUTING_CACHE) == before
    gateway_health_record(gateway_id=acmepay.pk, up=False, latency_ms=None)  # healthy -> unhealthy
    assert generation(ROUTING_CACHE) != before
    assert [(r.gateway_code, r.healthy) for r in route_list(**DE_DEPOSIT)] == [("acmepay", False), ("soapbank", True)]


def test_gateway_rows_are_cached_with_their_credentials_and_follow_edits(seeded: None) -> None:
    acmepay = Gateway.objects.get(code="acmepay")
    assert gateway_get(acmepay.pk).api_key == acmepay.api_key
    with CaptureQueriesContext(connection) as cached:
        assert gateway_get(acmepay.pk).base_url == acmepay.base_url
    assert len(cached) == 0
    acmepay.base_url = "http://127.0.0.1:9/moved"
    acmepay.save()
    assert gateway_get(acmepay.pk).base_url == "http://127.0.0.1:9/moved"
    assert gateway_get(10**9) is None


def test_without_the_shared_cache_every_read_goes_to_the_database(seeded: None) -> None:
    assert codes() == ["acmepay", "soapbank"]
    with mock.patch.object(localcache.cache, "get", side_effect=ConnectionError("cache down")):
        GatewayRoute.objects.filter(gateway__code="acmepay").update(is_active=False)  # the bump fails: logged
        with CaptureQueriesContext(connection) as uncached:
            assert codes() == ["soapbank"]
        assert len(uncached) == 1


def test_revoking_a_key_works_at_once_and_using_one_does_not_invalidate(transactional_db: Any) -> None:
    from rest_framework.test import APIClient

    _, key = api_key_create(client_name="merchant-c")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/transactions").status_code == 200  # cached now; last_used_at written
    before = generation(API_KEYS_CACHE)
    assert client.get("/api/v1/transactions").status_code == 200
    assert generation(API_KEYS_CACHE) == before
    assert ClientAPIKey.objects.get().last_used_at is not None

    api_key = ClientAPIKey.objects.get()
    api_key.revoked = True
    api_key.save()
    assert generation(API_KEYS_CACHE) != before
    assert client.get("/api/v1/transactions").status_code == 401


def test_a_request_reads_the_shared_generations_once(seeded: None, api: Any) -> None:
    deposit = {"customer_id": "c1", "country": "DE", "amount": "5.00", "currency": "EUR", "payment_details": {}}
    assert api.post("/api/v1/deposits", deposit, format="json").status_code == 202  # fills the caches
    with (
        mock.patch.object(localcache.cache, "get_many", wraps=localcache.cache.get_many) as get_many,
        CaptureQueriesContext(connection) as queries,
    ):
        assert api.post("/api/v1/deposits", deposit, format="json").status_code == 202
    # The key and the routes came from memory, after one look at the generations.
    assert get_many.call_count == 1
    assert not any("gatewayroute" in q["sql"] or "apikey" in q["sql"] for q in queries.captured_queries)


def test_customers_are_cached_once_committed_and_a_change_drops_them(seeded: None, api: Any) -> None:
    from payments.models import Customer

    deposit = {"customer_id": "c9", "country": "DE", "amount": "5.00", "currency": "EUR", "payment_details": {}}
    assert api.post("/api/v1/deposits", deposit, format="json").status_code == 202  # creates and caches c9
    with CaptureQueriesContext(connection) as queries:
        second = api.post("/api/v1/deposits", deposit, format="json")
    assert second.status_code == 202 and second.json()["customer_id"] == "c9"
    assert not any("payments_customer" in q["sql"] for q in queries.captured_queries)
    assert Customer.objects.count() == 1

    # (A customer with transactions is never deleted: their events keep them. A change through the ORM
    # invalidates the same way a deletion does.)
    Customer.objects.filter(reference="c9").update(country_id="DE")  # every process must forget the row
    with CaptureQueriesContext(connection) as queries:
        again = api.post("/api/v1/deposits", deposit, format="json")
    assert again.status_code == 202, again.content
    assert any("payments_customer" in q["sql"] for q in queries.captured_queries)
