"""The pay page's answers for each state of a transaction, its headers, languages and limits (CONTRACT §11)."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from payments.actions import pay_page_url, pay_return_url
from payments.models import Transaction
from testing.factories import IBAN

pytestmark = pytest.mark.django_db

REDIRECT = {"type": "redirect", "url": "https://bank.example/acs/123", "method": "GET", "fields": {}}
POST = {"type": "redirect", "url": "https://acs.bank.example/3ds", "method": "POST", "fields": {"creq": "abc<\"&'"}}
CODE = {"type": "display_code", "code": "00020126580014br.gov.bcb.pix", "expires_at": None}


@pytest.fixture
def deposit(make_transaction: Callable[..., Transaction]) -> Callable[..., Transaction]:
    def make(**fields: Any) -> Transaction:
        defaults: dict[str, Any] = {
            "amount": Decimal("1234.5"),
            "return_url": "https://shop.example/back?order=A-1",
            "payment_details": {"iban": IBAN},
        }
        return make_transaction(**{**defaults, **fields})

    return make


def open_page(client: Client, txn: Transaction, **headers: Any) -> Any:
    return client.get(pay_page_url(txn).removeprefix("http://127.0.0.1:8000"), **headers)


def assert_pay_headers(response: Any) -> None:
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["X-Frame-Options"] == "DENY"
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp


def test_waiting_page_reloads_and_shows_who_asks_for_how_much(client: Client, deposit: Any) -> None:
    txn = deposit()
    response = open_page(client, txn)
    assert response.status_code == 200
    assert_pay_headers(response)
    html = response.content.decode()
    assert 'http-equiv="refresh"' in html and f"/pay/{txn.pk}?t=" in html
    assert "€1,234.50" in html and "unit" in html  # the amount and the merchant's name
    assert "DE89" not in html and "3000" not in html  # never a payment detail


def test_a_get_action_is_a_303_to_the_gateway(client: Client, deposit: Any) -> None:
    txn = deposit(status="requires_action", action=REDIRECT)
    response = open_page(client, txn)
    assert response.status_code == 303 and response["Location"] == REDIRECT["url"]
    assert_pay_headers(response)


def test_a_post_action_is_a_self_submitting_form_with_a_visible_button(client: Client, deposit: Any) -> None:
    txn = deposit(status="requires_action", action=POST)
    response = open_page(client, txn)
    assert response.status_code == 200
    assert_pay_headers(response)
    html = response.content.decode()
    assert f'action="{POST["url"]}"' in html and 'method="post"' in html
    assert 'name="creq" value="abc&lt;&quot;&amp;&#x27;"' in html  # escaped
    assert '<button class="button" type="submit">' in html
    nonce = re.search(r'<script nonce="([^"]+)">', html)
    assert nonce is not None
    csp = response["Content-Security-Policy"]
    assert f"'nonce-{nonce.group(1)}'" in csp
    # The form may go to that gateway's origin, and only there.
    form_action = next(d for d in csp.split(";") if d.strip().startswith("form-action"))
    assert "https://acs.bank.example" in form_action and "bank.example/acs" not in form_action


def test_display_code_shows_the_code_and_a_qr_image_made_here(client: Client, deposit: Any) -> None:
    txn = deposit(status="requires_action", action=CODE)
    html = open_page(client, txn).content.decode()
    assert CODE["code"] in html
    assert 'src="data:image/svg+xml' in html
    assert 'http-equiv="refresh"' in html


def test_final_goes_back_to_the_merchant_with_the_transaction_id(client: Client, deposit: Any) -> None:
    txn = deposit(status="completed")
    response = open_page(client, txn)
    assert response.status_code == 303
    assert response["Location"] == f"https://shop.example/back?order=A-1&transaction_id={txn.pk}"
    assert_pay_headers(response)


@pytest.mark.parametrize(
    ("reason", "text"),
    [("cancelled", "You cancelled the payment"), ("expired", "ran out"), ("declined", "declined")],
)
def test_final_without_return_url_says_how_it_ended(client: Client, deposit: Any, reason: str, text: str) -> None:
    txn = deposit(status="failed", failure_reason=reason, return_url="", action=REDIRECT)
    response = open_page(client, txn)
    assert response.status_code == 200 and text in response.content.decode()


def test_completed_without_return_url(client: Client, deposit: Any) -> None:
    txn = deposit(status="completed", return_url="", action=CODE)
    assert "Payment complete" in open_page(client, txn).content.decode()


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(lambda txn, other: f"/pay/{txn.pk}", id="no-token"),
        pytest.param(lambda txn, other: f"/pay/{txn.pk}?t=nonsense", id="garbage-token"),
        pytest.param(lambda txn, other: pay_page_url(other).replace(str(other.pk), str(txn.pk), 1), id="other-token"),
        pytest.param(lambda txn, other: "/pay/not-a-uuid?t=x", id="not-a-uuid"),
        pytest.param(lambda txn, other: pay_return_url(other).replace(str(other.pk), str(txn.pk), 1), id="return"),
    ],
)
def test_a_wrong_token_is_a_plain_404(client: Client, deposit: Any, path: Any) -> None:
    txn, other = deposit(), deposit()
    response = client.get(path(txn, other).removeprefix("http://127.0.0.1:8000"))
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert_pay_headers(response)
    assert "1,234" not in response.content.decode()


def test_an_expired_token_is_a_404(client: Client, deposit: Any, settings: Any) -> None:
    txn = deposit()
    url = pay_page_url(txn).removeprefix("http://127.0.0.1:8000")
    settings.PAYGATE_NO_GATEWAY_DEADLINE_SECONDS = -100_000
    settings.PAYGATE_ACTION_DEADLINE_SECONDS = 0
    assert client.get(pay_page_url(txn).removeprefix("http://127.0.0.1:8000")).status_code == 404
    settings.PAYGATE_NO_GATEWAY_DEADLINE_SECONDS = 900
    settings.PAYGATE_ACTION_DEADLINE_SECONDS = 900
    assert client.get(url).status_code == 200


def test_post_is_not_allowed(client: Client, deposit: Any) -> None:
    txn = deposit()
    response = client.post(pay_page_url(txn).removeprefix("http://127.0.0.1:8000"))
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert_pay_headers(response)


@pytest.mark.parametrize(
    ("locale", "accept", "phrase", "amount"),
    [
        pytest.param("de-DE", "", "Einen Moment bitte", "1.234,50\u00a0€", id="locale-de"),
        pytest.param("", "pt-BR,pt;q=0.9,en;q=0.5", "Um momento, por favor", "€\u00a01.234,50", id="accept-pt"),
        pytest.param("pt-BR", "de", "Um momento, por favor", "€\u00a01.234,50", id="locale-wins"),
        pytest.param("", "fr-FR,de;q=0.8", "Einen Moment bitte", "1.234,50\u00a0€", id="first-supported"),
        pytest.param("", "fr-FR", "One moment, please", "€1,234.50", id="english-otherwise"),
        pytest.param("zz-ZZ", "", "One moment, please", "€1,234.50", id="unknown-locale"),
    ],
)
def test_the_customer_language(
    client: Client, deposit: Any, locale: str, accept: str, phrase: str, amount: str
) -> None:
    txn = deposit(locale=locale)
    response = open_page(client, txn, HTTP_ACCEPT_LANGUAGE=accept)
    html = response.content.decode()
    assert phrase in html and amount in html


def test_brazilian_reais_in_portuguese(client: Client, deposit: Any) -> None:
    txn = deposit(locale="pt-BR", currency="BRL", country_id="BR")
    assert "R$\u00a01.234,50" in open_page(client, txn).content.decode()


def test_rate_limited_per_address(client: Client, deposit: Any, settings: Any) -> None:
    import secrets

    settings.PAYGATE_PAY_PAGE_RATE_PER_MINUTE = 3
    txn = deposit()
    # Addresses of their own: the count lives in the shared cache, which outlives a test. A window
    # of a minute may turn mid-way: then once more.
    for _ in range(2):
        address, other = (f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}" for _ in range(2))
        codes = [open_page(client, txn, REMOTE_ADDR=address).status_code for _ in range(4)]
        if codes == [200, 200, 200, 429]:
            break
    assert codes == [200, 200, 200, 429]
    # Another address has its own count.
    assert open_page(client, txn, REMOTE_ADDR=other).status_code == 200


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://shop.example/back", "https://shop.example/back?transaction_id=T"),
        ("https://shop.example/back?", "https://shop.example/back?transaction_id=T"),
        ("https://shop.example/b?a=1&b=%20", "https://shop.example/b?a=1&b=%20&transaction_id=T"),
        ("https://shop.example/b?transaction_id=forged&a=1#top", "https://shop.example/b?a=1&transaction_id=T#top"),
        ("https://[::1]:8443/b", "https://[::1]:8443/b?transaction_id=T"),
    ],
)
def test_the_transaction_id_is_added_to_the_merchants_url(url: str, expected: str) -> None:
    from checkout.presentation import with_transaction_id

    assert with_transaction_id(url, "T") == expected


def test_processing_says_the_gateway_is_confirming(client: Client, deposit: Any) -> None:
    txn = deposit(status="processing", action=REDIRECT, locale="de")
    html = open_page(client, txn).content.decode()
    assert "Ihr Zahlungsanbieter bestätigt Ihre Zahlung" in html and 'http-equiv="refresh"' in html
