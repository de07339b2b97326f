"""Builders of test data: a deposit body with valid payment details, API clients with their keys,
transactions written straight to the database, the admin's routing form."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rest_framework.test import APIClient

    from gateways.models import Country
    from payments.models import Transaction

# A valid German IBAN (mod-97) and a test card that passes Luhn, with an expiry years away.
IBAN = "DE89370400440532013000"
BANK = {"iban": IBAN, "holder_name": "Jane Roe"}
CARD = {"number": "4242424242424242", "exp_month": "12", "exp_year": "2030", "cvc": "123", "holder_name": "Jane Roe"}
# A deposit of a DE customer in EUR; the demo routes send it to acmepay.
DEPOSIT: dict[str, Any] = {
    "customer_id": "cus_42",
    "country": "DE",
    "amount": "25.00",
    "currency": "EUR",
    "payment_details": BANK,
    "metadata": {"order": "A-1001"},
}
# A deposit whose payment details the customer gives on the pay page.
PAY_PAGE_DEPOSIT: dict[str, Any] = {"customer_id": "cus_7", "country": "DE", "amount": "1234.50", "currency": "EUR"}


def deposit_body(**changes: Any) -> dict[str, Any]:
    """DEPOSIT with `changes`; a field changed to None is left out."""
    return {name: value for name, value in {**DEPOSIT, **changes}.items() if value is not None}


def api_key(client_name: str) -> str:
    """A new API key of the client `client_name` (created if new)."""
    from payments.services import api_key_create

    return api_key_create(client_name=client_name)[1]


def api_client(key: str) -> APIClient:
    """An API client that sends `key` with every request."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def transaction_maker(client_name: str = "unit") -> Callable[..., Transaction]:
    """A function writing deposits of one client and a customer in DE straight to the database."""
    from payments.models import Customer, Transaction
    from payments.services import api_key_create

    client, _ = api_key_create(client_name=client_name)
    customer = Customer.objects.create(client=client, reference="c1", country_id="DE")

    def make(**fields: Any) -> Transaction:
        defaults = {"type": "deposit", "amount": Decimal("5"), "currency": "EUR", "country_id": "DE"}
        return Transaction.objects.create(client=client, customer=customer, **{**defaults, **fields})

    return make


def routing_fields(country: Country, **changes: Any) -> dict[str, Any]:
    """The country's routing settings as its admin page sends them."""
    fields = {
        "routing_strategy": country.routing_strategy,
        "routing_exploration": str(country.routing_exploration),
        "routing_latency_threshold_ms": str(country.routing_latency_threshold_ms or ""),
        "routing_window": str(country.routing_window),
        "routing_window_seconds": str(country.routing_window_seconds),
        "routing_min_samples": str(country.routing_min_samples),
        "routing_default_score": str(country.routing_default_score),
    }
    return {**fields, **changes}


def route_form(country: Country, **changes: dict[str, Any]) -> dict[str, Any]:
    """The country's admin page form as a browser sends it, with `changes` per gateway code."""
    from gateways.models import GatewayRoute

    routes = list(GatewayRoute.objects.filter(country=country).order_by("priority", "id"))
    form: dict[str, Any] = {
        "code": country.code,
        "name": country.name,
        "currency": country.currency,
        **routing_fields(country),
        "routes-TOTAL_FORMS": str(len(routes)),
        "routes-INITIAL_FORMS": str(len(routes)),
        "routes-MIN_NUM_FORMS": "0",
        "routes-MAX_NUM_FORMS": "1000",
    }
    for i, route in enumerate(routes):
        row: dict[str, Any] = {
            "id": str(route.pk),
            "country": str(country.pk),
            "gateway": str(route.gateway_id),
            "priority": str(route.priority),
            # A browser sends each ticked box or chosen option once under the same name.
            "currencies": list(route.currencies),
            "transaction_types": list(route.transaction_types),
            "is_active": "on" if route.is_active else "",
        }
        row.update(changes.get(route.gateway.code, {}))
        form.update({f"routes-{i}-{name}": value for name, value in row.items() if value != ""})
    return form
