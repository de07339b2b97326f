"""Reads for routing: which gateways may take a transaction, in priority order."""

from __future__ import annotations

from dataclasses import dataclass

from .models import Gateway, GatewayRoute
from .types import GatewayCredentials


@dataclass(frozen=True, slots=True)
class RouteChoice:
    gateway_id: int
    gateway_code: str
    priority: int
    healthy: bool


def route_list(*, country_code: str, currency: str, transaction_type: str) -> list[RouteChoice]:
    """Active routes of active gateways for this country, currency and type, priority first.

    Health is reported, not filtered: a route that exists but is unhealthy makes the
    transaction wait rather than be refused.
    """
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
