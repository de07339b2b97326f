"""Writes on gateways and routes."""

from __future__ import annotations

from django.db import transaction

from .demo import DEMO_COUNTRIES, DEMO_GATEWAYS
from .models import Country, Gateway, GatewayRoute


def demo_seed(
    *, host: str = "127.0.0.1", ports: dict[str, int] | None = None, base_urls: dict[str, str] | None = None
) -> None:
    """Create the demo gateways, countries and routes that are missing; edits made since are kept.

    `base_urls` (code → URL) overrides where a sandbox is, e.g. another container's name.
    """
    ports = ports or {}
    base_urls = base_urls or {}
    with transaction.atomic():
        gateways = {}
        for demo in DEMO_GATEWAYS:
            port = ports.get(demo.code, demo.port)
            gateway, _ = Gateway.objects.get_or_create(
                code=demo.code,
                defaults={
                    "name": demo.name,
                    "data_format": demo.data_format,
                    "base_url": base_urls.get(demo.code, f"http://{host}:{port}"),
                    "api_key": demo.api_key,
                    "webhook_secret": demo.webhook_secret,
                    "is_active": True,
                },
            )
            gateways[demo.code] = gateway
        for code, name, currency, minor_units, routes in DEMO_COUNTRIES:
            country, _ = Country.objects.get_or_create(
                code=code, defaults={"name": name, "currency": currency, "currency_minor_units": minor_units}
            )
            for gateway_code, priority in routes:
                GatewayRoute.objects.get_or_create(
                    country=country,
                    gateway=gateways[gateway_code],
                    defaults={"priority": priority, "is_active": True, "currencies": [currency]},
                )
