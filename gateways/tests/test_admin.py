"""The country page and its route inline: codes picked from lists, rows named so a person can read them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from gateways.models import Country, GatewayRoute
from testing.factories import route_form


@pytest.fixture
def staff_client(client: Any, demo: None) -> Any:
    client.force_login(get_user_model().objects.create_superuser("ops", "", "pw-for-tests-only"))
    return client


def country_url(code: str) -> str:
    return reverse("admin:gateways_country_change", args=[Country.objects.get(code=code).pk])


def test_the_route_inline_picks_currencies_and_types_from_lists(staff_client: Any) -> None:
    page = staff_client.get(country_url("DE")).content.decode()
    assert "<textarea" not in page
    currencies = re.search(r'<select name="routes-0-currencies"[^>]*>(.*?)</select>', page, re.S)
    assert currencies and "multiple" in currencies.group(0)
    assert re.search(r'<option value="EUR" selected>EUR</option>', currencies.group(1))
    assert '<option value="JPY">JPY</option>' in currencies.group(1)
    assert "None chosen: the country&#x27;s own currency." in page
    for kind in ("deposit", "withdrawal"):
        assert re.search(rf'<input type="checkbox" name="routes-0-transaction_types" value="{kind}"[^>]* checked', page)


def test_choices_are_stored_as_lists_of_codes(staff_client: Any) -> None:
    germany = Country.objects.get(code="DE")
    form = route_form(
        germany,
        acmepay={"currencies": ["USD", "EUR"], "transaction_types": ["withdrawal"]},
        soapbank={"currencies": []},
    )
    response = staff_client.post(country_url("DE"), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    acmepay = GatewayRoute.objects.get(country=germany, gateway__code="acmepay")
    soapbank = GatewayRoute.objects.get(country=germany, gateway__code="soapbank")
    assert (acmepay.currencies, acmepay.transaction_types) == (["USD", "EUR"], ["withdrawal"])
    # None chosen: the country's own currency, stored as before.
    assert soapbank.currencies == []
    assert soapbank.serves(currency="EUR", transaction_type="deposit", country_currency="EUR")


def test_a_route_serves_at_least_one_transaction_type(staff_client: Any) -> None:
    germany = Country.objects.get(code="DE")
    response = staff_client.post(country_url("DE"), route_form(germany, acmepay={"transaction_types": []}))
    assert response.status_code == 200
    assert "Pick at least one. To stop the route, untick is active." in response.content.decode()
    route = GatewayRoute.objects.get(country=germany, gateway__code="acmepay")
    assert route.transaction_types == ["deposit", "withdrawal"]


def test_a_code_outside_the_iso_list_is_not_lost_by_saving(staff_client: Any) -> None:
    germany = Country.objects.get(code="DE")
    # Stored before: "all types" as [], and a code the ISO list does not hold.
    GatewayRoute.objects.filter(country=germany, gateway__code="acmepay").update(
        currencies=["EUR", "XTS"], transaction_types=[]
    )
    page = staff_client.get(country_url("DE")).content.decode()
    assert '<option value="XTS" selected>XTS</option>' in page
    response = staff_client.post(
        country_url("DE"), route_form(germany, acmepay={"transaction_types": ["deposit", "withdrawal"]})
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    route = GatewayRoute.objects.get(country=germany, gateway__code="acmepay")
    # Shown ticked, sent back unchanged: the row is not rewritten.
    assert (route.currencies, route.transaction_types) == (["EUR", "XTS"], [])


def test_route_rows_are_named_for_people(staff_client: Any) -> None:
    route = GatewayRoute.objects.select_related("country", "gateway").get(country__code="DE", gateway__code="acmepay")
    assert str(route) == "DE → acmepay, priority 1"
    page = staff_client.get(country_url("DE")).content.decode()
    assert "DE → acmepay, priority 1" in page and "DE → soapbank, priority 2" in page
    assert not re.search(r"\b\d+:\d+@\d+\b", page)
    GatewayRoute.objects.filter(pk=route.pk).update(currencies=[], transaction_types=[])
    listing = staff_client.get(reverse("admin:gateways_gatewayroute_changelist")).content.decode()
    assert "DE → acmepay, priority 1" in listing
    assert '<td class="field-currency_list">the country&#x27;s own</td><td class="field-type_list">all</td>' in listing
    assert not re.search(r"\b\d+:\d+@\d+\b", listing)


def test_minor_units_come_from_iso_4217_not_from_the_country(staff_client: Any) -> None:
    assert "currency_minor_units" not in {field.name for field in Country._meta.get_fields()}
    Country.objects.create(code="JP", name="Japan", currency="JPY")
    Country.objects.create(code="KW", name="Kuwait", currency="KWD")
    page = staff_client.get(reverse("admin:gateways_country_changelist")).content.decode()
    minor_units = dict(
        re.findall(r'<td class="field-currency">([A-Z]{3})</td><td class="field-currency_minor_units">(\d)', page)
    )
    assert minor_units == {"EUR": "2", "GBP": "2", "USD": "2", "BRL": "2", "JPY": "0", "KWD": "3"}
    assert 'name="currency_minor_units"' not in staff_client.get(country_url("JP")).content.decode()


def test_the_admin_picks_methods_from_a_list_and_stores_their_codes(staff_client: Any) -> None:
    germany = Country.objects.get(code="DE")
    url = reverse("admin:gateways_country_change", args=[germany.pk])
    page = staff_client.get(url).content.decode()
    for method in ("card", "bank_account", "wallet", "redirect"):
        assert f'name="routes-0-payment_methods" value="{method}"' in page
    response = staff_client.post(url, route_form(germany, acmepay={"payment_methods": ["card", "bank_account"]}))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert GatewayRoute.objects.get(country=germany, gateway__code="acmepay").payment_methods == [
        "card",
        "bank_account",
    ]
    assert GatewayRoute.objects.get(country=germany, gateway__code="soapbank").payment_methods == []
