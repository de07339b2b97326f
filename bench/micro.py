"""Per-call costs of API-key verification, Fernet encryption of payment details and gateway row loads.

pytest-benchmark micro-benchmarks, run by `bench/run.py` on the bench database:

    .venv/bin/python -m pytest bench/micro.py --benchmark-only

(Not collected by `make test`: the file name does not match `test_*.py`.)

- API key (`payments/auth.py`, djangorestframework-api-key): the SHA-512 hash check alone,
  and the whole `ApiKeyAuthentication.authenticate` (the key row SELECT included).
- Fernet (django-fernet-fields): encrypting and decrypting a transaction's `payment_details`
  through the model field, as a save and a load do; and loading one `Gateway` row, whose three
  encrypted credentials are decrypted on every load, beside the same row loaded without them.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db

DETAILS = {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"}
CREDENTIALS = {"api_key", "webhook_secret", "previous_webhook_secret"}


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
