"""The secrets' development defaults, and the checks that refuse them, or weak ones, with DEBUG off.

settings.py reads the secrets from the environment and falls back to the defaults here with a
warning; with DEBUG off it calls `refuse_unsafe_secrets`, so that production refuses to start on
a development or guessable key (ImproperlyConfigured) rather than run insecurely.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c1e"  # nosec B105
DEV_FERNET_KEY = "dev-insecure-fernet-key-change-me-0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d"  # nosec B105
DEV_FINGERPRINT_KEY = "dev-insecure-fingerprint-key-change-me-5e7a9c1b3d5f7a9c1e3b5d7f"  # nosec B105
DEV_VAULT_KEY = "dev-insecure-vault-key-change-me-7d9f1b3e5a7c9e1f3a5c7e9b1d3f5a"  # nosec B105
# A fingerprint key shorter than this, or with fewer distinct characters, is refused with DEBUG off.
FINGERPRINT_KEY_MIN_LENGTH = 32
FINGERPRINT_KEY_MIN_UNIQUE = 10
# FERNET_KEYS entries are stretched with HKDF (django-fernet-fields), so any string "works":
# refuse the ones that cannot be a key someone generated on purpose.
FERNET_KEY_MIN_LENGTH = 32


def fernet_keys_problem(raw: str | None, keys: list[str]) -> str | None:
    """Why FERNET_KEYS is malformed, or None: empty entries, whitespace, short or repeated keys."""
    if raw is not None and any(not item.strip() for item in raw.split(",")):
        return "an empty entry (stray comma)"
    for key in keys:
        if any(char.isspace() for char in key):
            return "a key containing whitespace"
        if len(key) < FERNET_KEY_MIN_LENGTH:
            return f"a key shorter than {FERNET_KEY_MIN_LENGTH} characters"
        if key == DEV_FERNET_KEY:
            return "the development key"
    if len(set(keys)) != len(keys):
        return "the same key twice"
    return None


def secret_key_is_weak(value: str) -> bool:
    """Django's own rule (check security.W009), enforced at start instead of only by `check --deploy`."""
    from django.core.checks.security.base import (
        SECRET_KEY_INSECURE_PREFIX,
        SECRET_KEY_MIN_LENGTH,
        SECRET_KEY_MIN_UNIQUE_CHARACTERS,
    )

    return (
        len(value) < SECRET_KEY_MIN_LENGTH
        or len(set(value)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or value.startswith(SECRET_KEY_INSECURE_PREFIX)
    )


def refuse_unsafe_secrets(
    *,
    secret_key: str,
    fernet_keys: list[str],
    fernet_keys_raw: str | None,
    vault_keys: list[str],
    vault_keys_raw: str | None,
    fingerprint_keys: list[str],
) -> None:
    """Raise ImproperlyConfigured for a development, weak or malformed secret (`*_raw`: as the environment gave it)."""
    if secret_key == DEV_SECRET_KEY:
        raise ImproperlyConfigured(
            "DEBUG is off: set SECRET_KEY (or SECRET_KEY_FILE). "
            "On a development machine, ask for the development defaults with DEBUG=True, as `make run` does."
        )
    if secret_key_is_weak(secret_key):
        raise ImproperlyConfigured(
            "DEBUG is off: SECRET_KEY is weak (Django's check security.W009): use at least 50 random "
            "characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    if fernet_keys == [DEV_FERNET_KEY]:
        raise ImproperlyConfigured("DEBUG is off: set FERNET_KEYS (or FERNET_KEYS_FILE), newest key first.")
    fernet_problem = fernet_keys_problem(fernet_keys_raw, fernet_keys)
    if fernet_problem:
        raise ImproperlyConfigured(
            f"DEBUG is off: FERNET_KEYS is malformed ({fernet_problem}); it is a comma-separated list, "
            "newest first, of keys such as python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'."
        )
    if DEV_VAULT_KEY in vault_keys:
        raise ImproperlyConfigured(
            "DEBUG is off: set PAYGATE_VAULT_KEYS (or PAYGATE_VAULT_KEYS_FILE), newest key first."
        )
    vault_problem = fernet_keys_problem(vault_keys_raw, vault_keys)
    if vault_problem or set(vault_keys) & set(fernet_keys):
        raise ImproperlyConfigured(
            f"DEBUG is off: PAYGATE_VAULT_KEYS is malformed ({vault_problem or 'a key of FERNET_KEYS'}); it is a "
            "comma-separated list, newest first, of keys of their own, such as FERNET_KEYS has."
        )
    if DEV_FINGERPRINT_KEY in fingerprint_keys:
        raise ImproperlyConfigured(
            "DEBUG is off: set PAYGATE_FINGERPRINT_KEYS (or PAYGATE_FINGERPRINT_KEYS_FILE), newest key first."
        )
    if any(
        len(key) < FINGERPRINT_KEY_MIN_LENGTH or len(set(key)) < FINGERPRINT_KEY_MIN_UNIQUE for key in fingerprint_keys
    ):
        raise ImproperlyConfigured(
            f"DEBUG is off: every key in PAYGATE_FINGERPRINT_KEYS needs at least {FINGERPRINT_KEY_MIN_LENGTH} "
            f"characters, {FINGERPRINT_KEY_MIN_UNIQUE} of them distinct (e.g. secrets.token_urlsafe(32))."
        )
