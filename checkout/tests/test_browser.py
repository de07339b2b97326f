"""The customer's journey in a real browser (chromium) against the real stack (CONTRACT §11).

The merchant's page is a local receiver; the sandboxes play the bank. Each journey ends on
the merchant's page with the transaction final in the API.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from testing.api import MerchantPage, fetch, wait_status
from testing.api import pay_page_deposit as deposit
from testing.browser import PHONE, launched, screenshot
from testing.stack import Sandbox, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def merchant(settings: Any) -> Iterator[MerchantPage]:
    settings.DEBUG = True  # the merchant's page is plain http on loopback, as on `make run`
    page = MerchantPage()
    yield page
    page.stop()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # Playwright's sync API keeps an event loop in this thread; the test's ORM calls are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with launched() as browser:
        yield browser


def _on_merchant_page(page: Any, merchant: MerchantPage, txn_id: str) -> None:
    page.wait_for_url(re.compile(re.escape(merchant.url) + ".*transaction_id=" + txn_id), timeout=30_000)
    assert page.locator("#shop").inner_text() == "Thank you for your order"
    # The token never leaks to the merchant.
    assert merchant.referers[-1] is None


@pytest.mark.parametrize(
    ("button", "status", "reason"),
    [("Approve", "completed", None), ("Decline", "failed", "declined"), ("Cancel", "failed", "cancelled")],
)
def test_redirect_journey(
    api: Any, stack: dict[str, Sandbox], merchant: MerchantPage, browser: Any, button: str, status: str, reason: Any
) -> None:
    stack["acmepay"].mode("ok", action="redirect")
    txn = deposit(api, return_url=merchant.url, locale="de-DE")
    page = browser.new_page()
    page.goto(txn["next_action"]["url"])
    page.wait_for_url(re.compile(re.escape(stack["acmepay"].base_url) + "/challenge/"), timeout=30_000)
    screenshot(page, "challenge")
    page.get_by_role("button", name=button).click()
    _on_merchant_page(page, merchant, txn["id"])
    final = fetch(api, txn["id"])
    assert (final["status"], final["failure_reason"]) == (status, reason)


@pytest.mark.parametrize("scripts", [True, False], ids=["scripts-on", "scripts-off"])
def test_3ds_style_post_challenge(
    api: Any, stack: dict[str, Sandbox], merchant: MerchantPage, browser: Any, scripts: bool
) -> None:
    stack["soapbank"].mode("ok", action="redirect_post")
    txn = deposit(api, return_url=merchant.url, country="GB", currency="GBP", amount="49.99")
    context = browser.new_context(java_script_enabled=scripts)
    page = context.new_page()
    page.goto(txn["next_action"]["url"])
    if not scripts:
        # The form waits for the customer: a visible button takes them on.
        button = page.get_by_role("button", name="Continue to your bank")
        button.wait_for(timeout=30_000)
        assert button.is_visible() and page.locator(".amount").inner_text() == "£49.99"
        screenshot(page, "pay-page-continue")
        button.click()
    page.wait_for_url(re.compile(re.escape(stack["soapbank"].base_url) + "/challenge/"), timeout=30_000)
    page.get_by_role("button", name="Approve").click()
    _on_merchant_page(page, merchant, txn["id"])
    assert fetch(api, txn["id"])["status"] == "completed"
    context.close()


def test_display_code_on_a_phone(api: Any, stack: dict[str, Sandbox], merchant: MerchantPage, browser: Any) -> None:
    box = stack["soapbank"]
    box.mode("ok", action="display_code")
    txn = deposit(api, return_url=merchant.url, country="BR", currency="BRL", amount="150.00", locale="pt-BR")
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(txn["next_action"]["url"])
    qr = page.get_by_role("img", name="Código QR para pagar")
    qr.wait_for(timeout=30_000)
    # The QR image is drawn, and nothing is wider than the phone.
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", qr.element_handle())
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["viewport"]["width"]
    assert page.locator(".amount").inner_text().replace("\u00a0", " ") == "R$ 150,00"
    screenshot(page, "pay-page-code")
    shown = wait_status(api, txn["id"], {"requires_action"})
    assert shown["next_action"]["code"] in page.locator("#pay-code").input_value()
    [payment] = [p for p in box.payments() if p["transaction_id"] == txn["id"]]
    requests.post(f"{box.base_url}/_sandbox/payments/{payment['payment_id']}/pay", timeout=5).raise_for_status()
    # The page reloads by itself and, once the payment is final, hands the customer back.
    _on_merchant_page(page, merchant, txn["id"])
    assert wait_status(api, txn["id"], {"completed"})["status"] == "completed"
    context.close()


def test_redirect_journey_on_a_phone(api: Any, stack: dict[str, Sandbox], merchant: MerchantPage, browser: Any) -> None:
    stack["acmepay"].mode("ok", action="redirect")
    txn = deposit(api, return_url=merchant.url)
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(txn["next_action"]["url"])
    page.wait_for_url(re.compile("/challenge/"), timeout=30_000)
    approve = page.get_by_role("button", name="Approve")
    assert approve.is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["viewport"]["width"]
    screenshot(page, "challenge-phone")
    approve.click()
    _on_merchant_page(page, merchant, txn["id"])
    assert wait_for(lambda: fetch(api, txn["id"])["status"] == "completed", message="completed")
    context.close()


# --- Details collected on the pay page (CONTRACT §12) ---------------------------------------------


def _collect_journey(api: Any, stack: dict[str, Sandbox], merchant: MerchantPage, page: Any, shot: str) -> None:
    txn = deposit(api, payment_method="card", return_url=merchant.url, save_payment_method=True)
    page.goto(txn["next_action"]["url"])
    number = page.get_by_label("Card number")
    number.wait_for(timeout=30_000)
    # The number grouped and the expiry written as MM / YY while typing (the page's one script).
    number.press_sequentially("4242424242424241")
    assert number.input_value() == "4242 4242 4242 4241"
    page.get_by_label("Expiry date").press_sequentially("1231")
    assert page.get_by_label("Expiry date").input_value() == "12 / 31"
    page.get_by_label("Security code").fill("123")
    page.get_by_label("Name on card").fill("Jane Roe")
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    screenshot(page, f"{shot}-form")
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    # A wrong number: the error next to it, the number and code empty, the rest kept.
    error = page.locator("#err_number")
    error.wait_for(timeout=30_000)
    assert "not valid" in error.inner_text()
    assert page.get_by_label("Card number").input_value() == ""
    assert page.get_by_label("Security code").input_value() == ""
    assert page.get_by_label("Expiry date").input_value() == "12 / 31"
    screenshot(page, f"{shot}-error")
    page.get_by_label("Card number").press_sequentially("4242424242424242")
    page.get_by_label("Security code").fill("123")
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    _on_merchant_page(page, merchant, txn["id"])
    done = fetch(api, txn["id"])
    assert (done["status"], done["gateway"]) == ("completed", "acmepay")
    [payment] = [p for p in stack["acmepay"].payments() if p["transaction_id"] == txn["id"]]
    assert payment["payment_details"]["number"] == "4242"


def test_card_typed_on_the_pay_page(api: Any, stack: dict[str, Sandbox], merchant: MerchantPage, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    _collect_journey(api, stack, merchant, context.new_page(), "collect-desktop")
    context.close()


def test_card_typed_on_the_pay_page_on_a_phone(
    api: Any, stack: dict[str, Sandbox], merchant: MerchantPage, browser: Any
) -> None:
    context = browser.new_context(**PHONE)
    _collect_journey(api, stack, merchant, context.new_page(), "collect-phone")
    context.close()


def test_card_typed_on_the_pay_page_without_scripts(
    api: Any, stack: dict[str, Sandbox], merchant: MerchantPage, browser: Any
) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    txn = deposit(api, payment_method="card", return_url=merchant.url)
    page.goto(txn["next_action"]["url"])
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry date").fill("12/31")
    page.get_by_label("Security code").fill("123")
    page.get_by_label("Name on card").fill("Jane Roe")
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    _on_merchant_page(page, merchant, txn["id"])
    assert fetch(api, txn["id"])["status"] == "completed"
    context.close()


def test_bank_account_typed_on_the_pay_page_on_a_phone(
    api: Any, stack: dict[str, Sandbox], merchant: MerchantPage, browser: Any
) -> None:
    context = browser.new_context(**PHONE)
    page = context.new_page()
    txn = deposit(api, payment_method="bank_account", return_url=merchant.url, locale="de-DE")
    page.goto(txn["next_action"]["url"])
    page.get_by_label("IBAN").fill("DE89 3704 0044 0532 0130 01")
    page.get_by_label("Kontoinhaber").fill("Jana Muster")
    page.get_by_role("button", name=re.compile("bezahlen$")).click()
    error = page.locator("#err_iban")
    error.wait_for(timeout=30_000)
    assert "IBAN ist ungültig" in error.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["viewport"]["width"]
    screenshot(page, "collect-bank-phone-error")
    page.get_by_label("IBAN").fill("DE89 3704 0044 0532 0130 00")
    page.get_by_role("button", name=re.compile("bezahlen$")).click()
    _on_merchant_page(page, merchant, txn["id"])
    done = fetch(api, txn["id"])
    assert (done["status"], done["payment_details"]["iban"]) == ("completed", "DE************3000")
    context.close()
