"""Encryption at rest and key rotation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from core.encryption import encrypted_columns
from gateways.demo import demo_api_key
from gateways.models import Gateway
from payments.models import Transaction
from testing.factories import IBAN

OLD, NEW = "old-key-for-tests", "new-key-for-tests"


def use_keys(settings: Any, keys: list[str]) -> None:
    settings.FERNET_KEYS = keys
    for _, column in encrypted_columns():
        for cached in ("keys", "fernet_keys", "fernet"):
            column.__dict__.pop(cached, None)


@pytest.fixture
def old_key(settings: Any) -> Iterator[None]:
    original = list(settings.FERNET_KEYS)
    use_keys(settings, [OLD])
    yield
    use_keys(settings, original)


def raw_values() -> list[bytes]:
    values = []
    for model, column in encrypted_columns():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {column.column} FROM {model._meta.db_table}")  # noqa: S608
            values += [bytes(row[0]) for row in cursor.fetchall() if row[0] is not None]
    return values


def test_every_sensitive_column_is_encrypted() -> None:
    names = {f"{model._meta.label}.{column.name}" for model, column in encrypted_columns()}
    assert {
        "payments.Transaction.payment_details",
        "gateways.Gateway.api_key",
        "gateways.Gateway.callback_secret",
    } <= names


def test_rotation_re_encrypts_everything_and_the_old_key_can_go(
    api: Any, settings: Any, old_key: None, demo: None
) -> None:
    for n in range(7):
        body = {
            "customer_id": f"c{n}",
            "country": "DE",
            "amount": "1.00",
            "currency": "EUR",
            "payment_details": {"iban": IBAN, "n": str(n)},
        }
        assert api.post("/api/v1/deposits", data=json.dumps(body), content_type="application/json").status_code == 202
    before = raw_values()
    old = Fernet(encrypted_columns().__next__()[1].fernet_keys[0])
    for token in before:
        old.decrypt(token)  # raises if any value is not under the old key

    use_keys(settings, [NEW, OLD])
    out = StringIO()
    call_command("rotate_encryption_keys", "--batch-size", "3", stdout=out)
    assert f"re-encrypted {len(before)};" in out.getvalue()
    again = StringIO()
    call_command("rotate_encryption_keys", stdout=again)
    assert "re-encrypted 0;" in again.getvalue()

    use_keys(settings, [NEW])
    assert sorted(t.payment_details["n"] for t in Transaction.objects.all()) == [str(n) for n in range(7)]
    assert Gateway.objects.get(code="acmepay").api_key == demo_api_key("acmepay")
    assert set(raw_values()).isdisjoint(before)


def test_rotation_refuses_values_no_key_can_read(settings: Any, old_key: None, demo: None) -> None:
    use_keys(settings, [NEW])
    with pytest.raises(Exception, match="decrypt with no key"):
        call_command("rotate_encryption_keys", stdout=StringIO())
