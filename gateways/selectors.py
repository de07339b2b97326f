"""Reads for routing: which gateways may take a transaction, in priority order."""

from __future__ import annotations

from dataclasses import dataclass

from core.localcache import LocalCache

from .models import ROUTING_CACHE, Gateway, GatewayRoute
from .types import GatewayCredentials

# Routes and gateway rows, per process, following every edit at once (core.localcache).
_routes: LocalCache[list[RouteChoice]] = LocalCache(ROUTING_CACHE)
_gateways: LocalCache[Gateway] = LocalCache(ROUTING_CACHE)


@dataclass(frozen=True, slots=True)
class RouteChoice:
    gateway_id: int
    gateway_code: str
    priority: int
    healthy: bool


def route_list(*, country_code: str, currency: str, transaction_type: str) -> list[RouteChoice]:
    """Active routes of active gateways for this country, currency and type, priority first.

    Health is reported, not filtered: a route that exists but is unhealthy makes the
    transaction wait rather than be refused. The list is cached in the process until the
    next change to a country, gateway or route.
    """
    return list(
        _routes.get(
            (country_code, currency, transaction_type),
            lambda: _load_routes(country_code=country_code, currency=currency, transaction_type=transaction_type),
        )
    )


def gateway_get(gateway_id: int) -> Gateway | None:
    """The gateway row, with its decrypted credentials, cached like the routes. Treat it as read-only."""
    return _gateways.get(gateway_id, lambda: Gateway.objects.filter(pk=gateway_id).first())


def gateway_by_code(code: str) -> Gateway | None:
    """`gateway_get`, by the gateway's code (callbacks name their gateway in the URL)."""
    return _gateways.get(("code", code), lambda: Gateway.objects.filter(code=code).first())


def _load_routes(*, country_code: str, currency: str, transaction_type: str) -> list[RouteChoice]:
    routes = (
        GatewayRoute.objects.filter(country__code=country_code, is_active=True, gateway__is_active=True)
        .select_related("gateway", "country")
        # Credentials are decrypted on load: routing does not need them.
        .defer("gateway__api_key", "gateway__webhook_secret", "gateway__previous_webhook_secret")
        .order_by("priority", "id")
    )
    return [
        RouteChoice(
            gateway_id=route.gateway_id,
            gateway_code=route.gateway.code,
            priority=route.priority,
            healthy=route.gateway.health_status != Gateway.Health.UNHEALTHY,
        )
        for route in routes
        if route.serves(currency=currency, transaction_type=transaction_type, country_currency=route.country.currency)
    ]


def gateway_credentials(gateway: Gateway) -> GatewayCredentials:
    return GatewayCredentials(
        code=gateway.code,
        base_url=gateway.base_url.rstrip("/"),
        api_key=gateway.api_key,
        connect_timeout=gateway.connect_timeout,
        read_timeout=gateway.read_timeout,
    )
