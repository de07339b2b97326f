"""The routes a transaction may take, as the gateways' selectors list them from the database."""

from __future__ import annotations

from gateways.models import Gateway, GatewayRoute
from gateways.selectors import route_list


def codes(**kwargs: str) -> list[str]:
    return [route.gateway_code for route in route_list(**kwargs)]  # type: ignore[arg-type]


def test_routes_in_priority_order_by_country(demo: None) -> None:
    assert codes(country_code="DE", currency="EUR", transaction_type="deposit") == ["acmepay", "soapbank"]
    assert codes(country_code="GB", currency="GBP", transaction_type="withdrawal") == ["soapbank", "globex"]
    assert codes(country_code="US", currency="USD", transaction_type="deposit") == ["globex", "acmepay"]
    assert codes(country_code="BR", currency="BRL", transaction_type="deposit") == ["soapbank"]
    assert codes(country_code="DE", currency="USD", transaction_type="deposit") == []
    assert codes(country_code="FR", currency="EUR", transaction_type="deposit") == []


def test_routes_follow_edits(demo: None) -> None:
    GatewayRoute.objects.filter(country__code="DE", gateway__code="soapbank").update(priority=0)
    assert codes(country_code="DE", currency="EUR", transaction_type="deposit") == ["soapbank", "acmepay"]
    GatewayRoute.objects.filter(country__code="DE", gateway__code="soapbank").update(is_active=False)
    assert codes(country_code="DE", currency="EUR", transaction_type="deposit") == ["acmepay"]
    Gateway.objects.filter(code="acmepay").update(is_active=False)
    assert codes(country_code="DE", currency="EUR", transaction_type="deposit") == []


def test_routes_filter_by_type_and_currency(demo: None) -> None:
    GatewayRoute.objects.filter(country__code="DE", gateway__code="acmepay").update(
        transaction_types=["withdrawal"], currencies=["EUR", "USD"]
    )
    assert codes(country_code="DE", currency="EUR", transaction_type="deposit") == ["soapbank"]
    assert codes(country_code="DE", currency="USD", transaction_type="withdrawal") == ["acmepay"]


def test_unhealthy_routes_are_listed_but_marked(demo: None) -> None:
    Gateway.objects.filter(code="acmepay").update(health_status=Gateway.Health.UNHEALTHY)
    routes = route_list(country_code="DE", currency="EUR", transaction_type="deposit")
    assert [(r.gateway_code, r.healthy) for r in routes] == [("acmepay", False), ("soapbank", True)]
