"""Production settings: refuse development secrets, read secrets from files, pass `check --deploy`."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from testing.stack import manage


def production_env() -> dict[str, str]:
    return {
        "DEBUG": "False",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FERNET_KEYS": secrets.token_urlsafe(32),
        "PAYGATE_FINGERPRINT_KEYS": secrets.token_urlsafe(32),
        "PAYGATE_VAULT_KEYS": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "paygate.example.com",
    }


def test_check_deploy_passes_with_production_settings() -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production_env())
    assert result.returncode == 0, result.stderr + result.stdout


def test_production_refuses_the_development_secret_key() -> None:
    env = production_env()
    del env["SECRET_KEY"]
    result = manage("check", **env)
    assert result.returncode != 0 and "set SECRET_KEY" in result.stderr


def test_production_refuses_missing_fernet_keys() -> None:
    env = production_env()
    del env["FERNET_KEYS"]
    result = manage("check", **env)
    assert result.returncode != 0 and "set FERNET_KEYS" in result.stderr


def test_production_refuses_missing_vault_keys_or_fernet_keys_reused_for_the_vault() -> None:
    env = production_env()
    del env["PAYGATE_VAULT_KEYS"]
    missing = manage("check", **env)
    assert missing.returncode != 0 and "set PAYGATE_VAULT_KEYS" in missing.stderr
    shared = production_env()
    reused = manage("check", **{**shared, "PAYGATE_VAULT_KEYS": shared["FERNET_KEYS"]})
    assert reused.returncode != 0 and "PAYGATE_VAULT_KEYS is malformed" in reused.stderr


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    env = production_env()
    (tmp_path / "secret_key").write_text(env.pop("SECRET_KEY") + "\n")
    (tmp_path / "fernet_keys").write_text(env.pop("FERNET_KEYS"))
    (tmp_path / "fingerprint_keys").write_text(env.pop("PAYGATE_FINGERPRINT_KEYS") + "\n")
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY_FILE=str(tmp_path / "secret_key"),
        FERNET_KEYS_FILE=str(tmp_path / "fernet_keys"),
        PAYGATE_FINGERPRINT_KEYS_FILE=str(tmp_path / "fingerprint_keys"),
        **env,
    )
    assert result.returncode == 0, result.stderr


def test_development_defaults_warn_but_start_when_debug_is_asked_for() -> None:
    result = manage("check", DEBUG="True")
    assert result.returncode == 0
    assert "SECRET_KEY is not set" in result.stderr and "FERNET_KEYS is not set" in result.stderr
    assert "PAYGATE_FINGERPRINT_KEYS is not set" in result.stderr
    assert "PAYGATE_VAULT_KEYS is not set" in result.stderr


def test_debug_is_off_unless_asked_for() -> None:
    show = ("shell", "-c", "from django.conf import settings; print('DEBUG', settings.DEBUG)")
    env = production_env()
    del env["DEBUG"]
    assert "DEBUG False" in manage(*show, **env).stdout
    # Nothing set at all: production rules, so the development secrets are refused.
    bare = manage("check")
    assert bare.returncode != 0 and "set SECRET_KEY" in bare.stderr


@pytest.mark.parametrize(
    "secret_key",
    ["short-but-random-Zx81", "ab" * 40, "django-insecure-" + secrets.token_urlsafe(50)],
    ids=["under-50-characters", "under-5-distinct-characters", "django-insecure-prefix"],
)
def test_production_refuses_a_weak_secret_key(secret_key: str) -> None:
    result = manage("check", **{**production_env(), "SECRET_KEY": secret_key})
    assert result.returncode != 0 and "SECRET_KEY is weak" in result.stderr


@pytest.mark.parametrize(
    "fernet_keys",
    [
        "too-short",
        f"{secrets.token_urlsafe(32)},,{secrets.token_urlsafe(32)}",
        f"{secrets.token_urlsafe(32)},",
        f"{secrets.token_urlsafe(16)} {secrets.token_urlsafe(16)}",
        ",".join([secrets.token_urlsafe(32)] * 2),
    ],
    ids=["short", "empty-entry", "trailing-comma", "whitespace", "repeated"],
)
def test_production_refuses_malformed_fernet_keys(fernet_keys: str) -> None:
    result = manage("check", **{**production_env(), "FERNET_KEYS": fernet_keys})
    assert result.returncode != 0 and "FERNET_KEYS is malformed" in result.stderr


def test_production_accepts_generated_fernet_keys_newest_first() -> None:
    from cryptography.fernet import Fernet

    keys = f"{Fernet.generate_key().decode()},{secrets.token_urlsafe(32)}"
    result = manage("check", **{**production_env(), "FERNET_KEYS": keys})
    assert result.returncode == 0, result.stderr


def test_production_refuses_a_missing_fingerprint_key() -> None:
    env = production_env()
    del env["PAYGATE_FINGERPRINT_KEYS"]
    result = manage("check", **env)
    assert result.returncode != 0 and "set PAYGATE_FINGERPRINT_KEYS" in result.stderr


@pytest.mark.parametrize(
    "keys",
    ["short-key", "a" * 64, f"{secrets.token_urlsafe(32)},too-short-old-key"],
    ids=["short", "repetitive", "weak-previous-key"],
)
def test_production_refuses_a_weak_fingerprint_key(keys: str) -> None:
    result = manage("check", **{**production_env(), "PAYGATE_FINGERPRINT_KEYS": keys})
    assert result.returncode != 0 and "PAYGATE_FINGERPRINT_KEYS needs at least 32" in result.stderr
