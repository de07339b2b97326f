"""The customer's journey over real HTTP: API → worker → sandbox asking for an action → pay page →
the sandbox's challenge → back through the return endpoint → the merchant's page (CONTRACT §11)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from testing.api import MerchantPage, fetch, get, wait_status
from testing.api import pay_page_deposit as deposit
from testing.stack import Sandbox, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def merchant(settings: Any) -> Iterator[MerchantPage]:
    """The merchant's page, on plain http at loopback: as with DEBUG on (make run)."""
    settings.DEBUG = True
    page = MerchantPage()
    yield page
    page.stop()


def stack_public_url() -> str:
    from django.conf import settings

    return str(settings.PAYGATE_PUBLIC_URL)


def _to_gateway(pay_url: str) -> str:
    """Poll the pay page until it sends the browser on: the gateway's challenge URL."""

    def location() -> str | None:
        response = get(pay_url)
        assert response.status_code in (200, 303), response.status_code
        if response.status_code == 200:
            assert 'http-equiv="refresh"' in response.text  # the waiting page reloads itself
            return None
        return response.headers["Location"]

    return wait_for(location, timeout=30, interval=0.25, message="the pay page to redirect")


@pytest.mark.parametrize(
    ("choice", "status", "reason"),
    [
        pytest.param("approve", "completed", None, id="approve-completes"),
        pytest.param("decline", "failed", "declined", id="decline-fails-declined"),
        pytest.param("cancel", "failed", "cancelled", id="cancel-fails-cancelled"),
    ],
)
@pytest.mark.parametrize("gateway", ["acmepay", "soapbank"])
def test_redirect_challenge_and_return(
    api: Any, stack: dict[str, Sandbox], merchant: MerchantPage, gateway: str, choice: str, status: str, reason: Any
) -> None:
    stack[gateway].mode("ok", action="redirect")
    body = (
        {"return_url": merchant.url}
        if gateway == "acmepay"
        else {"return_url": merchant.url, "country": "GB", "currency": "GBP"}
    )
    txn = deposit(api, **body)
    action = txn["next_action"]
    assert action["type"] == "redirect"
    assert action["url"].startswith(f"{stack_public_url()}/pay/{txn['id']}?t=")

    challenge = _to_gateway(action["url"])
    assert challenge.startswith(stack[gateway].base_url + "/challenge/pay_")
    shown = fetch(api, txn["id"])
    assert shown["status"] == "requires_action" and shown["next_action"] == action

    page = get(challenge)
    assert page.status_code == 200 and "Approve" in page.text and "Cancel" in page.text
    decided = requests.post(f"{challenge}/decide", data={"choice": choice}, allow_redirects=False, timeout=10)
    assert decided.status_code == 303
    back = decided.headers["Location"]
    assert back.startswith(action["url"].split("?")[0] + "/return?t=")

    landing = get(back)
    # The return endpoint looked the attempt up before answering: the outcome is already there.
    assert landing.status_code == 303
    assert landing.headers["Location"].startswith(merchant.url + "&transaction_id=" + txn["id"])
    final = fetch(api, txn["id"])
    assert (final["status"], final["failure_reason"], final["next_action"]) == (status, reason, None)
    assert get(landing.headers["Location"]).status_code == 200
    assert merchant.visits[-1]["transaction_id"] == [txn["id"]]
    # The callback arrives too, and changes nothing more.
    wait_for(lambda: stack[gateway].payments()[0]["callbacks_delivered"] >= 1, message="the callback")
    assert wait_status(api, txn["id"], {status})["failure_reason"] == reason


def test_the_conversion_funnel_counts_each_stage(
    api: Any, stack: dict[str, Sandbox], merchant: MerchantPage, client: Any
) -> None:
    from testing.metrics import sample, scrape

    def stage(name: str) -> float:
        # Presented and ended are counted by the worker, forwarded and returned by the web process.
        return (
            sample(scrape(client), "paygate_customer_actions_total", gateway="acmepay", country="DE", stage=name) or 0.0
        )

    before = {name: stage(name) for name in ("presented", "forwarded", "returned", "completed", "cancelled")}
    stack["acmepay"].mode("ok", action="redirect")
    approved, cancelled = deposit(api, return_url=merchant.url), deposit(api, return_url=merchant.url)
    for txn, choice in ((approved, "approve"), (cancelled, "cancel")):
        challenge = _to_gateway(txn["next_action"]["url"])
        decided = requests.post(f"{challenge}/decide", data={"choice": choice}, allow_redirects=False, timeout=10)
        get(decided.headers["Location"])
    wait_status(api, cancelled["id"], {"failed"})
    expected = {"presented": 2, "forwarded": 2, "returned": 2, "completed": 1, "cancelled": 1}
    wait_for(
        lambda: all(stage(name) - before[name] == count for name, count in expected.items()),
        message=f"the funnel to count {expected}",
    )
