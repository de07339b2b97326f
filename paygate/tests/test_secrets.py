"""The secrets' checks on their own (payments/tests/test_settings.py starts manage.py with them)."""

from __future__ import annotations

import re
import secrets as random_secrets
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from paygate import secrets


def good(**overrides: Any) -> dict[str, Any]:
    fernet, vault = random_secrets.token_urlsafe(32), random_secrets.token_urlsafe(32)
    values: dict[str, Any] = {
        "secret_key": random_secrets.token_urlsafe(50),
        "fernet_keys": [fernet],
        "fernet_keys_raw": fernet,
        "vault_keys": [vault],
        "vault_keys_raw": vault,
        "fingerprint_keys": [random_secrets.token_urlsafe(32)],
    }
    return {**values, **overrides}


def test_generated_secrets_pass() -> None:
    secrets.refuse_unsafe_secrets(**good())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"secret_key": secrets.DEV_SECRET_KEY}, "set SECRET_KEY"),
        ({"secret_key": "short"}, "SECRET_KEY is weak"),
        ({"fernet_keys": [secrets.DEV_FERNET_KEY]}, "set FERNET_KEYS"),
        ({"fernet_keys": ["k" * 40, "k" * 40]}, "FERNET_KEYS is malformed (the same key twice)"),
        ({"vault_keys": [secrets.DEV_VAULT_KEY]}, "set PAYGATE_VAULT_KEYS"),
        ({"fingerprint_keys": [secrets.DEV_FINGERPRINT_KEY]}, "set PAYGATE_FINGERPRINT_KEYS"),
        ({"fingerprint_keys": ["a" * 40]}, "every key in PAYGATE_FINGERPRINT_KEYS"),
    ],
    ids=["dev-secret", "weak-secret", "dev-fernet", "fernet-twice", "dev-vault", "dev-fingerprint", "few-distinct"],
)
def test_unsafe_secrets_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        secrets.refuse_unsafe_secrets(**good(**overrides))


def test_vault_keys_must_not_be_fernet_keys() -> None:
    values = good()
    with pytest.raises(ImproperlyConfigured, match="a key of FERNET_KEYS"):
        secrets.refuse_unsafe_secrets(**{**values, "vault_keys": values["fernet_keys"]})


@pytest.mark.parametrize(
    ("raw", "keys", "problem"),
    [
        ("a,,b", ["a", "b"], "an empty entry (stray comma)"),
        (None, ["has space " + "x" * 40], "a key containing whitespace"),
        (None, ["x" * 31], "a key shorter than 32 characters"),
        (None, [secrets.DEV_FERNET_KEY], "the development key"),
        (None, ["x" * 32], None),
    ],
)
def test_fernet_keys_problem(raw: str | None, keys: list[str], problem: str | None) -> None:
    assert secrets.fernet_keys_problem(raw, keys) == problem
