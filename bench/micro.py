"""Per-call costs of API-key verification, Fernet encryption of payment details, gateway row loads and routing.

pytest-benchmark micro-benchmarks, run by `bench/run.py` on the bench database:

    .venv/bin/python -m pytest bench/micro.py --benchmark-only

(Not collected by `make test`: the file name does not match `test_*.py`.)

- API key (`payments/auth.py`, djangorestframework-api-key): the SHA-512 hash check alone,
  and the whole `ApiKeyAuthentication.authenticate` (the key row SELECT included).
- Fernet (django-fernet-fields): encrypting and decrypting a transaction's `payment_details`
  through the model field, as a save and a load do; and loading one `Gateway` row, whose three
  encrypted credentials are decrypted on every load, beside the same row loaded without them.
- Routing (`gateways.selectors.route_ranking`, what the worker's step asks before each call):
  a `priority` country against a `success_rate` one, whose scores are read from the shared
  store in one round trip; the pure ordering alone; and recording one outcome (one Lua script
  on Redis). As in a task, the cache generations are read once per unit of work, so the
  routes and settings come from the process's memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.django_db

DETAILS = {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"}
CREDENTIALS = {"api_key", "callback_secret", "previous_callback_secret"}


@pytest.fixture
def api_key() -> tuple[Any, str]:
    from payments.models import ClientAPIKey
    from payments.services import api_key_create

    _, key = api_key_create(client_name="bench-micro")
    return ClientAPIKey.objects.get_from_key(key), key


@pytest.fixture
def gateway_pk() -> Any:
    from gateways.models import Gateway
    from gateways.services import demo_seed

    demo_seed()
    return Gateway.objects.values_list("pk", flat=True).first()


def test_api_key_hash_verify(benchmark: Any, api_key: tuple[Any, str]) -> None:
    from payments.models import ClientAPIKey

    row, key = api_key
    assert benchmark(ClientAPIKey.objects.key_generator.verify, key, row.hashed_key)


def test_api_key_authenticate_with_db(benchmark: Any, api_key: tuple[Any, str]) -> None:
    from django.test import RequestFactory
    from rest_framework.request import Request

    from payments.auth import ApiKeyAuthentication

    request = Request(RequestFactory().post("/api/v1/deposits", HTTP_AUTHORIZATION=f"Api-Key {api_key[1]}"))
    assert benchmark(ApiKeyAuthentication().authenticate, request) is not None


def test_fernet_encrypt_payment_details(benchmark: Any) -> None:
    from django.db import connection

    from payments.models import Transaction

    field = Transaction._meta.get_field("payment_details")
    assert benchmark(field.get_db_prep_save, DETAILS, connection)


def test_fernet_decrypt_payment_details(benchmark: Any) -> None:
    from django.db import connection

    from payments.models import Transaction

    field = Transaction._meta.get_field("payment_details")
    prepared = field.get_db_prep_save(DETAILS, connection)
    token = bytes(getattr(prepared, "obj", prepared))  # psycopg wraps it in Binary; the database returns bytes
    assert benchmark(field.from_db_value, token, None, connection) == DETAILS


def test_gateway_row_load_with_credentials(benchmark: Any, gateway_pk: Any) -> None:
    from gateways.models import Gateway

    assert benchmark(lambda: Gateway.objects.get(pk=gateway_pk)).api_key


def test_gateway_row_load_without_credentials(benchmark: Any, gateway_pk: Any) -> None:
    from gateways.models import Gateway

    plain = [field.name for field in Gateway._meta.concrete_fields if field.name not in CREDENTIALS]
    assert benchmark(lambda: Gateway.objects.only(*plain).get(pk=gateway_pk)).code


@pytest.fixture
def routing_country() -> Iterator[Any]:
    """DE on the success-rate strategy with scored routes, FR a priority copy of it; the caches warm."""
    from core.localcache import begin_unit
    from gateways.models import Country, GatewayRoute
    from gateways.scores import ScoreKey, Window, score_record, scores_forget
    from gateways.services import country_routing_set, demo_seed

    demo_seed()
    germany = Country.objects.get(code="DE")
    france = Country.objects.create(code="FR", name="France", currency="EUR")
    for route in GatewayRoute.objects.filter(country=germany):
        GatewayRoute.objects.create(country=france, gateway=route.gateway, priority=route.priority)
        for index in range(200):
            score_record(
                ScoreKey(gateway_id=route.gateway_id, country="DE", currency="EUR", transaction_type="deposit"),
                window=Window(size=200, seconds=600),
                success=index % 10 != 0,
                latency_ms=20.0 + index % 50,
            )
    country_routing_set(country_code="DE", strategy="success_rate", latency_threshold_ms=500)
    begin_unit()
    yield germany
    # The cache is the stack's own (a simulation runs this before its traffic): leave it as found.
    scores_forget(
        ScoreKey(gateway_id=route.gateway_id, country="DE", currency="EUR", transaction_type="deposit")
        for route in GatewayRoute.objects.filter(country=germany)
    )


def test_route_ranking_priority(benchmark: Any, routing_country: Any) -> None:
    from gateways.selectors import route_ranking

    ranking = benchmark(route_ranking, country_code="FR", currency="EUR", transaction_type="deposit")
    assert ranking.strategy == "priority" and len(ranking.order) == 2


def test_route_ranking_success_rate(benchmark: Any, routing_country: Any) -> None:
    from gateways.selectors import route_ranking

    ranking = benchmark(route_ranking, country_code="DE", currency="EUR", transaction_type="deposit")
    assert ranking.strategy == "success_rate" and all(view.measured for view in ranking.views.values())


def test_routes_rank_pure(benchmark: Any, routing_country: Any) -> None:
    import random

    from gateways.routing import routes_rank
    from gateways.selectors import country_routing, route_list, route_scores

    routes = route_list(country_code="DE", currency="EUR", transaction_type="deposit")
    scores = route_scores(routes, country_code="DE", currency="EUR", transaction_type="deposit")
    settings = country_routing("DE")
    ranking = benchmark(routes_rank, routes, settings=settings, scores=scores, draw=random.random)
    assert len(ranking.order) == 2


def test_route_score_record(benchmark: Any, routing_country: Any) -> None:
    from gateways.scores import ScoreKey, Window, score_record

    key = ScoreKey(
        gateway_id=routing_country.routes.first().gateway_id, country="DE", currency="EUR", transaction_type="deposit"
    )
    benchmark(score_record, key, window=Window(size=200, seconds=600), success=True, latency_ms=42.0)
