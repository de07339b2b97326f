"""Customer actions in the merchant API and the pipeline (CONTRACT §11), without a worker."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from defusedxml.ElementTree import fromstring
from django.utils import timezone

from core.paytoken import pay_token_valid
from payments.models import Attempt, Event, Transaction
from payments.processing import transaction_process, transaction_reconcile
from payments.services import transaction_lock
from payments.settlement import transaction_settle_from_callback
from testing.factories import deposit_body
from testing.stack import Sandbox

pytestmark = pytest.mark.django_db

DEPOSIT = deposit_body(customer_id="cus_1", payment_details=None, metadata=None)
RETURN = "https://shop.example/orders/A-1?step=done"


def post(api: Any, path: str = "/api/v1/deposits", **changes: Any) -> Any:
    return api.post(path, data=json.dumps({**DEPOSIT, **changes}), content_type="application/json")


def test_a_deposit_with_return_url_carries_the_pay_page_from_the_first_answer(api: Any, demo: None) -> None:
    response = post(api, return_url=RETURN, locale="de-DE")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending"
    action = body["next_action"]
    assert set(action) == {"type", "url", "expires_at"} and action["type"] == "redirect"
    prefix = f"http://127.0.0.1:8000/pay/{body['id']}?t="
    assert action["url"].startswith(prefix)
    assert pay_token_valid(action["url"].removeprefix(prefix), transaction_id=body["id"])
    # The same in the event and in a later read.
    event = Event.objects.get(transaction_id=body["id"], type="transaction.created")
    assert event.data["object"]["next_action"] == action
    assert api.get(f"/api/v1/transactions/{body['id']}").json()["next_action"] == action
    txn = Transaction.objects.get(pk=body["id"])
    assert (txn.return_url, txn.locale) == (RETURN, "de-DE")


def test_without_return_url_next_action_is_null(api: Any, demo: None) -> None:
    body = post(api).json()
    assert body["next_action"] is None
    assert api.get(f"/api/v1/transactions/{body['id']}").json()["next_action"] is None


def test_next_action_in_xml(api: Any, demo: None) -> None:
    xml = (
        "<transaction><customer_id>c</customer_id><country>DE</country><amount>5</amount>"
        f"<currency>EUR</currency><return_url>{RETURN.replace('&', '&amp;')}</return_url></transaction>"
    )
    response = api.post("/api/v1/deposits", data=xml, content_type="application/xml", HTTP_ACCEPT="application/xml")
    assert response.status_code == 202, response.content
    root = fromstring(response.content)
    assert root.findtext("next_action/type") == "redirect"
    assert "/pay/" in (root.findtext("next_action/url") or "")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("ftp://shop.example/x", id="not-http"),
        pytest.param("/relative/path", id="relative"),
        pytest.param("https://", id="no-host"),
        pytest.param("https://shop.example/" + "a" * 2000, id="too-long"),
        pytest.param("https://user:pw@shop.example/", id="credentials"),
        pytest.param("https://shop.example/a b", id="space"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("https://shop.example:99999/", id="bad-port"),
        pytest.param("https://shop.example/\n", id="trailing-newline"),
        pytest.param("https://shop.example/a\\b", id="backslash"),
        pytest.param("https://shöp.example/", id="not-ascii"),
        pytest.param(42, id="number"),
    ],
)
def test_a_bad_return_url_is_a_400(api: Any, demo: None, value: Any) -> None:
    response = post(api, return_url=value)
    assert response.status_code == 400
    assert "return_url" in response.json()["error"]["fields"]


def test_plain_http_return_url_only_with_debug(api: Any, demo: None, settings: Any) -> None:
    settings.DEBUG = False
    assert post(api, return_url="http://shop.example/back").status_code == 400
    assert post(api, return_url="https://shop.example/back").status_code == 202
    settings.DEBUG = True
    assert post(api, return_url="http://127.0.0.1:9000/back").status_code == 202


def test_a_withdrawal_with_return_url_is_an_unknown_field(api: Any, demo: None) -> None:
    response = post(api, "/api/v1/withdrawals", return_url=RETURN)
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"return_url": ["Unknown field."]}
    response = post(api, "/api/v1/withdrawals", locale="de")
    assert response.json()["error"]["fields"] == {"locale": ["Unknown field."]}


@pytest.mark.parametrize("value", ["german", "d", "de_DE", "de-", "", 7, "de\n", "de-a-b-c-d"])
def test_a_bad_locale_is_a_400(api: Any, demo: None, value: Any) -> None:
    assert post(api, locale=value).status_code == 400


def test_the_return_url_is_part_of_the_idempotent_request(api: Any, demo: None) -> None:
    first = api.post(
        "/api/v1/deposits",
        data=json.dumps({**DEPOSIT, "return_url": RETURN}),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    again = api.post(
        "/api/v1/deposits",
        data=json.dumps({**DEPOSIT, "return_url": RETURN + "&x=1"}),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert first.status_code == 202 and again.status_code == 409


# --- the pipeline, driven in this process against the sandboxes --------------------------------


def _create(api: Any, **changes: Any) -> str:
    response = post(api, return_url=RETURN, **changes)
    assert response.status_code == 202, response.content
    return str(response.json()["id"])


def test_a_gateway_asking_for_a_redirect_puts_the_deposit_in_requires_action(
    api: Any, quiet_sandboxes: dict[str, Sandbox]
) -> None:
    quiet_sandboxes["acmepay"].mode("ok", action="redirect_post", callback="none")
    txn_id = _create(api)
    transaction_process(transaction_id=txn_id)
    txn = Transaction.objects.get(pk=txn_id)
    assert txn.status == "requires_action" and txn.gateway.code == "acmepay"
    assert txn.action["type"] == "redirect" and txn.action["method"] == "POST" and "creq" in txn.action["fields"]
    shown = api.get(f"/api/v1/transactions/{txn_id}").json()
    # The merchant sees Paygate's pay page, never the gateway's challenge URL.
    assert shown["next_action"]["type"] == "redirect" and "/pay/" in shown["next_action"]["url"]
    assert quiet_sandboxes["acmepay"].base_url not in json.dumps(shown)
    event = Event.objects.filter(transaction_id=txn_id).order_by("-id").first()
    assert event is not None and event.type == "transaction.requires_action"
    # The gateway got Paygate's return endpoint, with the transaction's own token.
    [payment] = quiet_sandboxes["acmepay"].payments()
    assert payment["return_url"].startswith(f"http://127.0.0.1:8000/pay/{txn_id}/return?t=")


def test_display_code_is_shown_with_its_code(api: Any, quiet_sandboxes: dict[str, Sandbox]) -> None:
    quiet_sandboxes["soapbank"].mode("ok", action="display_code", callback="none")
    txn_id = _create(api, country="BR", currency="BRL")
    transaction_process(transaction_id=txn_id)
    shown = api.get(f"/api/v1/transactions/{txn_id}").json()
    assert shown["status"] == "requires_action"
    action = shown["next_action"]
    assert action["type"] == "display_code" and action["code"].startswith("000201")
    assert "/pay/" in action["url"] and action["expires_at"]


def test_a_gateway_asking_for_an_action_without_return_url_still_shows_next_action(
    api: Any, quiet_sandboxes: dict[str, Sandbox]
) -> None:
    quiet_sandboxes["acmepay"].mode("ok", action="display_code", callback="none")
    response = post(api)
    assert response.json()["next_action"] is None
    transaction_process(transaction_id=response.json()["id"])
    assert api.get(f"/api/v1/transactions/{response.json()['id']}").json()["next_action"]["type"] == "display_code"


def _past_action_deadline(txn_id: str) -> None:
    txn = Transaction.objects.get(pk=txn_id)
    past = timezone.now() - timedelta(seconds=1)
    Transaction.objects.filter(pk=txn_id).update(
        action={**txn.action, "deadline": past.timestamp()}, next_check_at=past
    )


def test_nobody_acting_in_time_expires_after_one_more_look_up(api: Any, quiet_sandboxes: dict[str, Sandbox]) -> None:
    quiet_sandboxes["acmepay"].mode("ok", action="redirect", callback="none")
    txn_id = _create(api)
    transaction_process(transaction_id=txn_id)
    # Before the deadline a look-up that finds it still waiting changes nothing.
    transaction_reconcile(transaction_id=txn_id)
    assert Transaction.objects.get(pk=txn_id).status == "requires_action"
    _past_action_deadline(txn_id)
    lookups = Transaction.objects.get(pk=txn_id).lookup_count
    transaction_reconcile(transaction_id=txn_id)
    txn = Transaction.objects.get(pk=txn_id)
    assert (txn.status, txn.failure_reason, txn.lookup_count) == ("failed", "expired", lookups + 1)
    assert api.get(f"/api/v1/transactions/{txn_id}").json()["next_action"] is None


def test_an_action_done_just_before_the_deadline_is_found_by_the_last_look_up(
    api: Any, quiet_sandboxes: dict[str, Sandbox]
) -> None:
    box = quiet_sandboxes["acmepay"]
    box.mode("ok", action="display_code", callback="none")
    txn_id = _create(api)
    transaction_process(transaction_id=txn_id)
    [payment] = box.payments()
    import requests

    requests.post(f"{box.base_url}/_sandbox/payments/{payment['payment_id']}/pay", timeout=5).raise_for_status()
    _past_action_deadline(txn_id)
    transaction_reconcile(transaction_id=txn_id)
    assert Transaction.objects.get(pk=txn_id).status == "completed"


def test_requires_action_is_never_failed_over(api: Any, quiet_sandboxes: dict[str, Sandbox]) -> None:
    quiet_sandboxes["acmepay"].mode("ok", action="redirect", callback="none")
    txn_id = _create(api)
    transaction_process(transaction_id=txn_id)
    quiet_sandboxes["acmepay"].mode("down")
    transaction_reconcile(transaction_id=txn_id)
    transaction_process(transaction_id=txn_id)
    txn = Transaction.objects.get(pk=txn_id)
    assert txn.status == "requires_action"
    assert list(Attempt.objects.filter(transaction_id=txn_id).values_list("gateway__code", flat=True)) == ["acmepay"]
    assert quiet_sandboxes["soapbank"].payments() == []
    # Down past the deadline: expired on that gateway, still never sent elsewhere.
    _past_action_deadline(txn_id)
    transaction_reconcile(transaction_id=txn_id)
    txn = Transaction.objects.get(pk=txn_id)
    assert (txn.status, txn.failure_reason) == ("failed", "expired")
    assert Attempt.objects.filter(transaction_id=txn_id).count() == 1


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("cancelled", "cancelled"),
        ("declined", "declined"),
        ("rejected_by_bank", "gateway_failed"),
        (None, "gateway_failed"),
    ],
)
def test_a_failed_callback_names_why(
    api: Any, quiet_sandboxes: dict[str, Sandbox], reason: str | None, expected: str
) -> None:
    quiet_sandboxes["acmepay"].mode("ok", action="redirect", callback="none")
    txn_id = _create(api)
    transaction_process(transaction_id=txn_id)
    attempt = Attempt.objects.get(transaction_id=txn_id)
    from django.db import transaction

    with transaction.atomic():
        transaction_settle_from_callback(
            reference=str(attempt.pk),
            gateway_id=attempt.gateway_id,
            status="failed",
            payment_id=attempt.gateway_payment_id,
            reason=reason,
        )
    assert Transaction.objects.get(pk=txn_id).failure_reason == expected


def test_a_declined_reason_outside_an_action_stays_gateway_failed(
    api: Any, quiet_sandboxes: dict[str, Sandbox]
) -> None:
    txn_id = _create(api)
    transaction_process(transaction_id=txn_id)
    attempt = Attempt.objects.get(transaction_id=txn_id)
    from django.db import transaction

    with transaction.atomic():
        assert transaction_lock(txn_id).status == "processing"
        transaction_settle_from_callback(
            reference=str(attempt.pk), gateway_id=attempt.gateway_id, status="failed", payment_id="", reason="declined"
        )
    assert Transaction.objects.get(pk=txn_id).failure_reason == "gateway_failed"


@pytest.mark.parametrize("end", ["cancelled", "expired", "completed"])
def test_success_rate_counts_cancelled_and_expired_actions_as_failures(
    api: Any, quiet_sandboxes: dict[str, Sandbox], end: str, django_capture_on_commit_callbacks: Any
) -> None:
    from gateways.models import Gateway
    from gateways.scores import ScoreKey, scores_forget, scores_read

    key = ScoreKey(
        gateway_id=Gateway.objects.get(code="acmepay").pk, country="DE", currency="EUR", transaction_type="deposit"
    )
    scores_forget([key])
    quiet_sandboxes["acmepay"].mode("ok", action="redirect", callback="none")
    txn_id = _create(api)
    transaction_process(transaction_id=txn_id)
    assert scores_read([key])[key].samples == 0  # an action waiting is no outcome yet
    if end == "expired":
        _past_action_deadline(txn_id)
        with django_capture_on_commit_callbacks(execute=True):
            transaction_reconcile(transaction_id=txn_id)
    else:
        attempt = Attempt.objects.get(transaction_id=txn_id)
        from django.db import transaction

        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            transaction_settle_from_callback(
                reference=str(attempt.pk),
                gateway_id=attempt.gateway_id,
                status="completed" if end == "completed" else "failed",
                payment_id=attempt.gateway_payment_id,
                reason=None if end == "completed" else "cancelled",
            )
    score = scores_read([key])[key]
    assert (score.samples, score.successes) == (1, 1 if end == "completed" else 0)
    scores_forget([key])
