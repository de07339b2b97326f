"""`Authorization: Api-Key <key>`: keys are stored hashed (SHA-512 of a high-entropy key)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.clientip import client_ip, counted_address
from core.localcache import LocalCache
from core.throttling import FailureLimit

from .models import API_KEYS_CACHE, ApiClient, ClientAPIKey

KEYWORD = "Api-Key"
# Writing last_used_at on every request would make every request a write; once a minute is enough.
_LAST_USED_RESOLUTION = timedelta(seconds=60)
# Key rows (hashes, never keys) by prefix; a revocation or any other change reaches every process
# on its next request (core.localcache).
_keys: LocalCache[ClientAPIKey] = LocalCache(API_KEYS_CACHE)
# Wrong keys per client address, an IPv6 one per /64 (PAYGATE_AUTH_FAILURE_LIMIT). Only failing
# attempts are refused: behind a load balancer every client may share one address, and a valid
# key must never be refused for others' junk. Keys are random (about 190 bits), so checking a
# guess from a limited address gives nothing away that matters.
auth_failures = FailureLimit("api_key", setting="PAYGATE_AUTH_FAILURE_LIMIT")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiClient, ClientAPIKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        address = counted_address(client_ip(request))
        keyword, _, key = header.partition(" ")
        if keyword != KEYWORD or not key.strip():
            self._failed(address)
            raise exceptions.AuthenticationFailed(f"Use 'Authorization: {KEYWORD} <key>'.")
        api_key = self._lookup(key.strip())
        if api_key is None:
            self._failed(address)
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
            ClientAPIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now  # the cached row too, or every later request would write
        return api_key.client, api_key

    @staticmethod
    def _failed(address: str) -> None:
        wait = auth_failures.record(address)
        if wait is not None:
            raise exceptions.Throttled(wait)

    @staticmethod
    def _lookup(key: str) -> ClientAPIKey | None:
        prefix, _, _ = key.partition(".")
        candidate = _keys.get(prefix, lambda: _usable_key(prefix))
        if candidate is not None and candidate.is_valid(key) and not candidate.has_expired:
            return candidate
        return None

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


def _usable_key(prefix: str) -> ClientAPIKey | None:
    # The prefix is unique; the key's hash is checked on every request, cached row or not.
    return ClientAPIKey.objects.select_related("client").filter(prefix=prefix, revoked=False).first()


def client_of(request: Any) -> ApiClient:
    client = request.user
    if not isinstance(client, ApiClient):
        raise exceptions.NotAuthenticated()
    return client


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes `Authorization: Api-Key <key>` in the OpenAPI schema."""

    target_class = "payments.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; create one with `python manage.py create_api_key <name>`.",
        }
