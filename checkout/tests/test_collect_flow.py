"""Details collected on the pay page, on the real stack (CONTRACT §12): a deposit without details →
the pay page's form over HTTP → the JSON sandbox receives them → completed; nobody typing → expired."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from testing.api import MerchantPage, fetch, wait_status
from testing.api import pay_page_deposit as deposit
from testing.stack import Sandbox, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

YEAR = "2031"


@pytest.fixture
def merchant(settings: Any) -> Iterator[MerchantPage]:
    settings.DEBUG = True  # the merchant's page is plain http on loopback, as on `make run`
    page = MerchantPage()
    yield page
    page.stop()


def test_card_typed_on_the_pay_page_reaches_the_json_sandbox_and_completes(
    api: Any, stack: dict[str, Sandbox], merchant: MerchantPage
) -> None:
    txn = deposit(
        api,
        country="DE",
        currency="EUR",
        amount="25.00",
        payment_method="card",
        return_url=merchant.url,
        save_payment_method=True,
    )
    url = txn["next_action"]["url"]
    browser = requests.Session()
    form = browser.get(url, timeout=10)
    assert form.status_code == 200 and 'autocomplete="cc-number"' in form.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text)
    assert csrf is not None
    assert fetch(api, txn["id"])["status"] == "pending"
    assert not [p for p in stack["acmepay"].payments() if p["transaction_id"] == txn["id"]]
    typed = {
        "csrf": csrf.group(1),
        "number": "4242 4242 4242 4242",
        "exp": f"12 / {YEAR[2:]}",
        "cvc": "123",
        "holder_name": "Jane Roe",
        "save": "1",  # the customer's own tick, offered because the merchant allowed it
    }
    answer = browser.post(url, data=typed, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text
    done = wait_status(api, txn["id"], {"completed", "failed"})
    assert (done["status"], done["gateway"]) == ("completed", "acmepay")
    [payment] = [p for p in stack["acmepay"].payments() if p["transaction_id"] == txn["id"]]
    assert payment["payment_method"] == "card"
    assert payment["payment_details"] == {
        "number": "4242",
        "exp_month": "12",
        "exp_year": YEAR,
        "cvc": "***",
        "holder_name": " Roe",
    }
    # Saved as the customer asked, masked in the list.
    saved = wait_for(
        lambda: api.get(f"/api/v1/customers/{txn['customer_id']}/payment-methods").json()["payment_methods"],
        timeout=30,
        message="the typed card to be saved",
    )
    assert [(m["type"], m["last4"], m["exp_year"]) for m in saved] == [("card", "4242", YEAR)]
    # The page hands the customer back to the merchant.
    back = browser.get(url, allow_redirects=False, timeout=10)
    assert back.status_code == 303 and back.headers["Location"].startswith(merchant.url.split("?")[0])


def test_nobody_typing_within_the_deadline_fails_expired(
    api: Any, stack: dict[str, Sandbox], merchant: MerchantPage, settings: Any
) -> None:
    from payments.tasks import sweep_due

    settings.PAYGATE_ACTION_DEADLINE_SECONDS = 1
    txn = deposit(api, payment_method="bank_account", return_url=merchant.url)

    def expired() -> dict[str, Any] | None:
        sweep_due()  # the recovery sweep, as beat runs it: due at the deadline, then `expired`
        body = fetch(api, txn["id"])
        return body if body["status"] == "failed" else None

    final = wait_for(expired, timeout=30, interval=0.25, message="the collected deposit to expire")
    assert (final["failure_reason"], final["attempts"]) == ("expired", [])
