"""Guessing costs: wrong API keys and bad callback signatures per address, admin passwords per username."""

from __future__ import annotations

import ipaddress
import json
import secrets
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings
from rest_framework.test import APIClient

from core.signing import signature_header
from gateways.models import Gateway
from testing.api import assert_error

pytestmark = pytest.mark.django_db


def fresh_address() -> str:
    """An address no earlier test (nor run, within the minute) has counted failures for."""
    # In the canonical form the server keys its counts by (no leading zeros in a group).
    return str(ipaddress.ip_address(f"2001:db8:{secrets.token_hex(2)}::{secrets.token_hex(2)}"))


def get(client: APIClient, key: str, address: str, **extra: str) -> Any:
    return client.get("/api/v1/transactions", HTTP_AUTHORIZATION=f"Api-Key {key}", REMOTE_ADDR=address, **extra)


@override_settings(PAYGATE_AUTH_FAILURE_LIMIT="3/minute")
def test_wrong_api_keys_from_one_address_get_429_with_retry_after(api_key: str) -> None:
    client, attacker, other = APIClient(), fresh_address(), fresh_address()
    for _ in range(3):
        assert_error(get(client, "nope.guess", attacker), 401, "authentication_failed")
    limited = get(client, "nope.guess", attacker)
    error = assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited["Retry-After"]) <= 60 and error["message"]
    # Only failing attempts are refused: the right key from that address still works.
    assert get(client, api_key, attacker).status_code == 200
    # A malformed header is a failed attempt too.
    assert_error(client.get("/api/v1/transactions", HTTP_AUTHORIZATION="Bearer x", REMOTE_ADDR=attacker), 429)
    # Other addresses, and requests without any key, are not affected.
    assert get(client, api_key, other).status_code == 200
    assert_error(get(client, "nope.guess", other), 401)
    assert_error(client.get("/api/v1/transactions", REMOTE_ADDR=attacker), 401, "not_authenticated")


@override_settings(PAYGATE_AUTH_FAILURE_LIMIT="3/minute", PAYGATE_RATE_LIMIT="5/minute")
def test_authenticated_clients_keep_their_own_limit(api_key: str) -> None:
    client, address = APIClient(), fresh_address()
    statuses = [get(client, api_key, address).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]  # successes never count as failures; the per-key limit still holds


def test_the_production_limit_is_about_a_hundred_a_minute() -> None:
    from paygate import settings as module

    assert module.PAYGATE_AUTH_FAILURE_LIMIT == "100/minute"
    assert module.PAYGATE_CALLBACK_FAILURE_LIMIT == "100/minute"


@override_settings(PAYGATE_AUTH_FAILURE_LIMIT="2/minute", PAYGATE_TRUSTED_PROXIES=["10.9.0.0/16"])
def test_failures_behind_a_trusted_proxy_count_per_forwarded_client() -> None:
    client, one, two = APIClient(), "198.51.100.23", "198.51.100.24"
    proxy = {"REMOTE_ADDR": "10.9.0.2"}
    for _ in range(2):
        assert_error(
            client.get("/api/v1/transactions", HTTP_AUTHORIZATION="Api-Key x.y", HTTP_X_FORWARDED_FOR=one, **proxy), 401
        )
    assert_error(
        client.get("/api/v1/transactions", HTTP_AUTHORIZATION="Api-Key x.y", HTTP_X_FORWARDED_FOR=one, **proxy), 429
    )
    assert_error(
        client.get("/api/v1/transactions", HTTP_AUTHORIZATION="Api-Key x.y", HTTP_X_FORWARDED_FOR=two, **proxy), 401
    )
    # A client that is not a trusted proxy cannot pick the address it is counted under.
    direct = fresh_address()
    for spoofed in ("203.0.113.1", "203.0.113.2"):
        get(client, "x.y", direct, HTTP_X_FORWARDED_FOR=spoofed)
    assert_error(get(client, "x.y", direct, HTTP_X_FORWARDED_FOR="203.0.113.3"), 429)


@override_settings(PAYGATE_AUTH_FAILURE_LIMIT="100/minute", PAYGATE_TRUSTED_PROXIES=["10.9.0.0/16"])
def test_junk_keys_through_a_load_balancer_never_lock_out_a_valid_key(api_key: str) -> None:
    """Behind the balancer every client has its address: 150 junk keys are refused, merchants are not."""
    client, balancer = APIClient(), {"REMOTE_ADDR": "10.9.0.2", "HTTP_X_FORWARDED_FOR": "10.9.0.3"}
    statuses = [
        client.get("/api/v1/transactions", HTTP_AUTHORIZATION=f"Api-Key junk{n}.x", **balancer).status_code
        for n in range(150)
    ]
    assert statuses == [401] * 100 + [429] * 50
    for _ in range(3):
        assert (
            client.get("/api/v1/transactions", HTTP_AUTHORIZATION=f"Api-Key {api_key}", **balancer).status_code == 200
        )


@override_settings(PAYGATE_AUTH_FAILURE_LIMIT="3/minute")
def test_ipv6_failures_count_per_64_so_a_subnet_cannot_rotate_addresses() -> None:
    client, base = APIClient(), fresh_address()
    subnet = ipaddress.ip_network(f"{base}/64", strict=False)
    neighbours = [str(subnet.network_address + n) for n in (1, 2, 3, 2**40)]
    for address in neighbours[:3]:
        assert_error(get(client, "nope.guess", address), 401)
    assert_error(get(client, "nope.guess", neighbours[3]), 429, "rate_limited")
    # The next /64 is someone else.
    assert_error(get(client, "nope.guess", str(subnet.broadcast_address + 1)), 401)


# --- callbacks ----------------------------------------------------------------------------------


def callback(client: APIClient, code: str, secret: str, address: str) -> Any:
    body = json.dumps(
        {"event_id": f"evt_{secrets.token_hex(4)}", "reference": "x", "payment_id": "p1", "status": "completed"}
    ).encode()
    return client.post(
        f"/api/v1/callbacks/{code}",
        data=body,
        content_type="application/json",
        HTTP_X_SIGNATURE=signature_header(secret=secret, body=body),
        REMOTE_ADDR=address,
    )


@override_settings(PAYGATE_CALLBACK_FAILURE_LIMIT="2/minute")
def test_bad_callback_signatures_are_limited_per_gateway_and_address(demo: None) -> None:
    good = Gateway.objects.get(code="acmepay").callback_secret
    client, attacker, other = APIClient(), fresh_address(), fresh_address()
    for _ in range(2):
        assert_error(callback(client, "acmepay", "forged", attacker), 401, "signature_invalid")
    limited = callback(client, "acmepay", "forged", attacker)
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited["Retry-After"]) <= 60
    # Only bad signatures are refused: a correctly signed one from that address is applied.
    assert callback(client, "acmepay", good, attacker).status_code == 200
    assert_error(callback(client, "acmepay", "forged", attacker), 429)
    # Another gateway from the same address, and the same gateway from elsewhere, are unaffected.
    assert_error(callback(client, "globex", "forged", attacker), 401)
    assert callback(client, "acmepay", good, other).status_code == 200


# --- admin logins (django-axes) -----------------------------------------------------------------


def test_admin_lockout_meets_pci_dss_8_3_4() -> None:
    assert django_settings.AXES_FAILURE_LIMIT <= 10
    assert django_settings.AXES_COOLOFF_TIME >= timedelta(minutes=30)
    assert "username" in django_settings.AXES_LOCKOUT_PARAMETERS


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])  # fast: ten wrong tries
def test_admin_login_locks_a_username_after_ten_failures_until_reset() -> None:
    get_user_model().objects.create_superuser("ops", "", "right-password-1")
    login = "/admin/login/?next=/admin/"

    def attempt(password: str, address: str) -> Any:
        return Client(REMOTE_ADDR=address).post(login, {"username": "ops", "password": password})

    for number in range(10):
        # From ever new addresses: the lock is on the username, wherever the guesses come from.
        response = attempt(f"wrong-{number}", fresh_address())
        assert response.status_code in (200, 429)
    locked = attempt("right-password-1", fresh_address())
    assert locked.status_code == 429
    assert "_auth_user_id" not in locked.client.session
    assert "locked" in locked.content.decode().lower()

    call_command("axes_reset_username", "ops")
    unlocked = attempt("right-password-1", fresh_address())
    assert unlocked.status_code == 302 and unlocked["Location"] == "/admin/"


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
def test_admin_login_failures_under_the_limit_do_not_lock() -> None:
    get_user_model().objects.create_superuser("ops", "", "right-password-1")
    address = fresh_address()
    for number in range(9):
        Client(REMOTE_ADDR=address).post("/admin/login/", {"username": "ops", "password": f"wrong-{number}"})
    assert (
        Client(REMOTE_ADDR=address)
        .post("/admin/login/", {"username": "ops", "password": "right-password-1"})
        .status_code
        == 302
    )


@pytest.mark.services
@override_settings(PAYGATE_AUTH_FAILURE_LIMIT="5/minute")
def test_failure_counts_live_in_redis_shared_by_every_web_process(api_key: str) -> None:
    from django.core.cache import cache

    address = fresh_address()
    get(APIClient(), "nope.guess", address)
    redis = cache._cache.get_client(write=True)
    network = ipaddress.ip_network(f"{address}/64", strict=False)
    [key] = redis.keys(cache.make_key(f"failures:api_key:{network}:*"))
    assert int(redis.get(key)) == 1
    assert 0 < redis.ttl(key) <= 61  # the window's own expiry, not pushed back by later failures
    # Failures counted by other processes are what this one goes by.
    redis.set(key, 5, keepttl=True)
    assert_error(get(APIClient(), "nope.guess", address), 429, "rate_limited")
    assert get(APIClient(), api_key, address).status_code == 200


def test_weak_lockout_and_malformed_proxy_settings_refuse_to_start() -> None:
    from testing.stack import manage

    for env, message in [
        ({"PAYGATE_ADMIN_LOGIN_FAILURE_LIMIT": "11"}, "between 1 and 10"),
        ({"PAYGATE_ADMIN_LOCKOUT_MINUTES": "29"}, "at least 30"),
        ({"PAYGATE_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}, "PAYGATE_TRUSTED_PROXIES"),
        ({"PAYGATE_AUTH_FAILURE_LIMIT": "100/min"}, "PAYGATE_AUTH_FAILURE_LIMIT"),
        ({"PAYGATE_CALLBACK_FAILURE_LIMIT": "lots"}, "PAYGATE_CALLBACK_FAILURE_LIMIT"),
    ]:
        result = manage("check", DEBUG="True", **env)  # refused in development too
        assert result.returncode != 0 and message in result.stderr, (env, result.stderr[-500:])
