"""The pay page's form for details Paygate collects (CONTRACT §12): the API accepts the deposit without
details, the form validates by the API's rules, stores them and starts processing; CSRF, the token,
a second POST, the deadline, and the CSP reports."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from checkout.collect import CSRF_COOKIE
from checkout.metrics import CSP_VIOLATIONS
from payments.collect import transaction_details_collect
from payments.models import Transaction
from payments.processing import transaction_process
from testing.factories import IBAN, deposit_body

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo")]

NEXT_YEAR = str(timezone.now().year + 1)
VISA = "4111111111111111"
BODY = deposit_body(
    customer_id="cus_9",
    payment_method="card",
    return_url="https://shop.example/back",
    payment_details=None,
    metadata=None,
)


def create(api: Any, **changes: Any) -> Any:
    body = {key: value for key, value in {**BODY, **changes}.items() if value is not None}
    return api.post("/api/v1/deposits", data=json.dumps(body), content_type="application/json")


def collected(api: Any, **changes: Any) -> dict[str, Any]:
    response = create(api, **changes)
    assert response.status_code == 202, response.content
    return response.json()


def page_path(shown: dict[str, Any]) -> str:
    url = shown["next_action"]["url"]
    return url[url.index("/pay/") :]


def open_form(client: Client, shown: dict[str, Any]) -> tuple[str, str]:
    """The form's page and its CSRF field's value."""
    response = client.get(page_path(shown))
    assert response.status_code == 200
    html = response.content.decode()
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert token is not None, html
    return html, token.group(1)


def card_form(csrf: str, **changes: str) -> dict[str, str]:
    return {
        "csrf": csrf,
        "number": "4111 1111 1111 1111",
        "exp": f"12 / {NEXT_YEAR[2:]}",
        "cvc": "123",
        "holder_name": "Ada Lovelace",
        **changes,
    }


def stored(shown: dict[str, Any]) -> Transaction:
    return Transaction.objects.get(pk=shown["id"])


# --- The API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["card", "bank_account"])
def test_a_deposit_without_details_is_collected_on_the_pay_page(api: Any, method: str) -> None:
    shown = collected(api, payment_method=method)
    assert shown["status"] == "pending"
    assert shown["next_action"]["type"] == "redirect" and "/pay/" in shown["next_action"]["url"]
    assert shown["payment_method"] == method


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"return_url": None}, "payment_details", id="no-return-url"),
        pytest.param({"payment_method": "wallet"}, "payment_details", id="wallet-is-not-collected"),
    ],
)
def test_without_return_url_or_for_a_wallet_details_stay_required(api: Any, changes: Any, field: str) -> None:
    response = create(api, **changes)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_a_withdrawal_is_never_collected(api: Any) -> None:
    body = {k: v for k, v in BODY.items() if k != "return_url"}
    response = api.post("/api/v1/withdrawals", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert "payment_details" in response.json()["error"]["fields"]


def test_a_collected_deposit_goes_to_no_gateway_until_the_details_arrive(api: Any) -> None:
    shown = collected(api)
    assert transaction_process(transaction_id=shown["id"]) is None
    txn = stored(shown)
    assert txn.status == "pending" and not txn.attempts.exists()
    assert txn.next_check_at is not None and txn.next_check_at > timezone.now() + timedelta(seconds=600)


# --- The form ------------------------------------------------------------------------------------


def test_the_form_has_the_card_fields_autofill_hints_and_a_hashed_first_party_script(api: Any, client: Client) -> None:
    shown = collected(api)
    html, _ = open_form(client, shown)
    for hint in ("cc-number", "cc-exp", "cc-csc", "cc-name"):
        assert f'autocomplete="{hint}"' in html
    assert 'placeholder="MM / YY"' in html
    scripts = re.findall(r"<script[^>]*>", html)
    assert len(scripts) == 1
    assert 'src="/static/checkout/collect.js"' in scripts[0]
    assert re.search(r'integrity="sha384-[A-Za-z0-9+/=]{64}"', scripts[0])
    assert 'nonce="' in scripts[0]
    assert 'name="save"' not in html  # the merchant did not offer saving


def test_valid_details_are_stored_encrypted_and_processing_starts(
    api: Any, client: Client, django_capture_on_commit_callbacks: Any, caplog: Any
) -> None:
    shown = collected(api)
    _, csrf = open_form(client, shown)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(page_path(shown), card_form(csrf))
    assert response.status_code == 303 and response["Location"] == page_path(shown)
    assert callbacks, "processing is published once the details are committed"
    txn = stored(shown)
    assert txn.payment_details == {
        "number": VISA,
        "exp_month": "12",
        "exp_year": NEXT_YEAR,
        "cvc": "123",
        "holder_name": "Ada Lovelace",
    }
    assert txn.action["type"] == "collect_details" and "collected_at" in txn.action
    # As the API shows it: masked, the security code left out.
    details = api.get(f"/api/v1/transactions/{txn.pk}").json()["payment_details"]
    assert details["number"].endswith("1111") and VISA not in json.dumps(details) and "cvc" not in details
    assert VISA not in caplog.text and "123" not in [r.getMessage() for r in caplog.records]
    # The page now waits for the gateway.
    waiting = client.get(page_path(shown))
    assert waiting.status_code == 200 and 'http-equiv="refresh"' in waiting.content.decode()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        pytest.param({"number": "4111 1111 1111 1112"}, "number", "This card number is not valid", id="luhn"),
        pytest.param({"exp": "01 / 20"}, "exp", "This card has expired", id="expired"),
        pytest.param({"exp": "13/99x"}, "exp", "MM / YY", id="unreadable-expiry"),
        pytest.param({"cvc": "12"}, "cvc", "security code", id="short-cvc"),
        pytest.param({"holder_name": ""}, "holder_name", "name on the card", id="no-name"),
    ],
)
def test_invalid_details_show_the_error_next_to_the_field_and_never_echo_number_or_cvc(
    api: Any, client: Client, changes: dict[str, str], field: str, message: str
) -> None:
    shown = collected(api)
    _, csrf = open_form(client, shown)
    response = client.post(page_path(shown), card_form(csrf, **changes))
    assert response.status_code == 400
    html = response.content.decode()
    assert f'id="err_{field}"' in html and message in html
    assert f'id="id_{field}"' in html and 'aria-invalid="true"' in html
    assert "4111" not in html and 'value="123"' not in html and 'value="12"' not in html.replace('value="12 /', "")
    txn = stored(shown)
    assert txn.payment_details == {} and txn.action["type"] == "collect_details" and "deadline" in txn.action


def test_a_bank_account_by_iban_or_by_account_number_and_bank_code(api: Any, client: Client) -> None:
    first = collected(api, payment_method="bank_account")
    _, csrf = open_form(client, first)
    bad = client.post(page_path(first), {"csrf": csrf, "iban": "DE89 3704 0044 0532 0130 01", "holder_name": "Ada"})
    assert bad.status_code == 400 and "This IBAN is not valid" in bad.content.decode()
    good = client.post(page_path(first), {"csrf": csrf, "iban": "de89 3704 0044 0532 0130 00", "holder_name": "Ada"})
    assert good.status_code == 303
    assert stored(first).payment_details == {"iban": IBAN, "holder_name": "Ada"}
    second = collected(api, payment_method="bank_account")
    _, csrf = open_form(client, second)
    form = {"csrf": csrf, "account_number": "12345678", "bank_code": "021000021", "holder_name": "Ada"}
    assert client.post(page_path(second), form).status_code == 303
    assert stored(second).payment_details == {
        "account_number": "12345678",
        "bank_code": "021000021",
        "holder_name": "Ada",
    }


def test_a_wrong_token_is_a_404(api: Any, client: Client) -> None:
    shown = collected(api)
    _, csrf = open_form(client, shown)
    path = page_path(shown)
    response = client.post(path[: path.index("?t=")] + "?t=forged", card_form(csrf))
    assert response.status_code == 404
    assert stored(shown).payment_details == {}


@pytest.mark.parametrize("case", ["no-field", "no-cookie", "other-transaction"])
def test_a_post_without_the_forms_csrf_proof_is_refused(api: Any, client: Client, case: str) -> None:
    shown = collected(api)
    _, csrf = open_form(client, shown)
    form = card_form(csrf)
    if case == "no-field":
        form.pop("csrf")
    elif case == "no-cookie":
        client.cookies.pop(CSRF_COOKIE)
    else:
        other = collected(api)
        _, form["csrf"] = open_form(client, other)
        client.cookies[CSRF_COOKIE] = client.cookies[CSRF_COOKIE].value  # the last page's cookie, for both
    response = client.post(page_path(shown), form)
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()
    assert stored(shown).payment_details == {}


def test_a_second_post_after_the_details_were_taken_changes_nothing(api: Any, client: Client) -> None:
    shown = collected(api)
    _, csrf = open_form(client, shown)
    assert client.post(page_path(shown), card_form(csrf)).status_code == 303
    again = client.post(page_path(shown), card_form(csrf, number="5555 5555 5555 4444", holder_name="Mallory"))
    assert again.status_code == 303 and again["Location"] == page_path(shown)
    assert stored(shown).payment_details["number"] == VISA
    assert transaction_details_collect(transaction_id=shown["id"], details={}, save=False).gone


def test_a_transaction_not_awaiting_details_takes_no_form(api: Any, client: Client) -> None:
    shown = collected(
        api,
        payment_details={"number": VISA, "exp_month": "12", "exp_year": NEXT_YEAR, "cvc": "123", "holder_name": "A"},
    )
    response = client.post(page_path(shown), {"csrf": "x", "number": "4242424242424242"})
    assert response.status_code == 405
    assert response["Cache-Control"] == "no-store"


def test_nobody_typing_within_the_deadline_fails_expired(api: Any, client: Client, settings: Any) -> None:
    settings.PAYGATE_ACTION_DEADLINE_SECONDS = 0
    shown = collected(api)
    txn = stored(shown)
    assert txn.next_check_at <= timezone.now()  # due for the recovery sweep right away
    from payments.tasks import sweep_due

    assert sweep_due()["pending"] >= 1
    transaction_process(transaction_id=shown["id"])
    txn = stored(shown)
    assert txn.status == "failed" and txn.failure_reason == "expired"
    # The form is gone: the page sends the customer back to the merchant.
    response = client.get(page_path(shown))
    assert response.status_code == 303 and response["Location"].startswith("https://shop.example/back")


def test_the_save_tick_is_offered_when_the_merchant_allows_it_and_counts_only_when_ticked(
    api: Any, client: Client
) -> None:
    offered = collected(api, save_payment_method=True)
    html, csrf = open_form(client, offered)
    assert 'name="save"' in html
    assert client.post(page_path(offered), card_form(csrf)).status_code == 303
    assert stored(offered).save_payment_method is False  # not ticked
    ticked = collected(api, save_payment_method=True)
    _, csrf = open_form(client, ticked)
    assert client.post(page_path(ticked), {**card_form(csrf), "save": "1"}).status_code == 303
    assert stored(ticked).save_payment_method is True
    not_offered = collected(api)
    _, csrf = open_form(client, not_offered)
    assert client.post(page_path(not_offered), {**card_form(csrf), "save": "1"}).status_code == 303
    assert stored(not_offered).save_payment_method is False


# --- Security headers and CSP reports -------------------------------------------------------------


def test_the_form_pages_security_headers_are_exactly_these(api: Any, client: Client) -> None:
    """Pinned (PCI DSS 6.4.3): any change to the pay page's headers shows here."""
    shown = collected(api)
    response = client.get(page_path(shown))
    nonce = re.search(r'nonce="([^"]+)"', response.content.decode())
    assert nonce is not None
    directives = sorted(part.strip() for part in response["Content-Security-Policy"].split(";"))
    assert directives == sorted(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce.group(1)}'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "report-uri /csp-report",
            "report-to csp",
        ]
    )
    headers = {
        name: response[name]
        for name in (
            "Cache-Control",
            "Referrer-Policy",
            "X-Frame-Options",
            "X-Content-Type-Options",
            "Reporting-Endpoints",
            "Cross-Origin-Opener-Policy",
        )
        if name in response
    }
    assert headers == {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Reporting-Endpoints": 'csp="/csp-report"',
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    cookie = response.cookies[CSRF_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == f"/pay/{shown['id']}"


def _violations(directive: str) -> float:
    return CSP_VIOLATIONS.labels(directive=directive)._value.get()


def test_csp_reports_of_both_formats_are_logged_and_counted_without_the_token(
    client: Client, caplog: Any, settings: Any
) -> None:
    settings.PAYGATE_METRICS_TOKEN = "m-token"
    before = _violations("script-src-elem")
    legacy = {
        "csp-report": {
            "document-uri": "https://pay.example/pay/abc?t=SECRET",
            "effective-directive": "script-src-elem",
            "blocked-uri": "https://evil.example/skim.js?x=1",
        }
    }
    response = client.post("/csp-report", json.dumps(legacy), content_type="application/csp-report")
    assert response.status_code == 204
    modern = [
        {
            "type": "csp-violation",
            "url": "https://pay.example/pay/abc?t=SECRET",
            "body": {"effectiveDirective": "script-src-elem", "blockedURL": "https://evil.example/x.js"},
        }
    ]
    response = client.post("/csp-report", json.dumps(modern), content_type="application/reports+json")
    assert response.status_code == 204
    assert _violations("script-src-elem") == before + 2
    assert "evil.example/skim.js" in caplog.text and "SECRET" not in caplog.text
    metrics = client.get("/metrics", HTTP_AUTHORIZATION="Bearer m-token")
    assert 'paygate_csp_violations_total{directive="script-src-elem"}' in metrics.content.decode()


@pytest.mark.parametrize("body", [b"", b"not json", b"[1,2]", b'{"csp-report": 5}', b"{" * 20000])
def test_a_malformed_csp_report_is_a_quiet_204(client: Client, body: bytes) -> None:
    assert client.post("/csp-report", body, content_type="application/csp-report").status_code == 204


def test_csp_report_takes_only_post(client: Client) -> None:
    assert client.get("/csp-report").status_code == 405


def test_a_deposit_waiting_for_its_details_is_not_a_stuck_pending_one(api: Any) -> None:
    from payments.selectors import transaction_oldest_waiting_ages

    shown = collected(api)
    later = timezone.now() + timedelta(seconds=600)
    assert transaction_oldest_waiting_ages(now=later)["pending"] is None
    Transaction.objects.filter(pk=shown["id"]).update(action={"type": "collect_details", "collected_at": 1.0})
    assert transaction_oldest_waiting_ages(now=later)["pending"] is not None


def test_an_expired_collection_is_not_a_gateway_action_in_the_funnel(
    api: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from payments.metrics import CUSTOMER_ACTIONS

    settings.PAYGATE_ACTION_DEADLINE_SECONDS = 0
    before = CUSTOMER_ACTIONS.labels(gateway="none", country="DE", stage="expired")._value.get()
    shown = collected(api)
    with django_capture_on_commit_callbacks(execute=True):
        transaction_process(transaction_id=shown["id"])
    assert stored(shown).failure_reason == "expired"
    assert CUSTOMER_ACTIONS.labels(gateway="none", country="DE", stage="expired")._value.get() == before


@pytest.mark.parametrize("field", ["number", "exp", "cvc", "holder_name"])
def test_a_nul_in_any_field_is_refused_like_the_api_refuses_it(api: Any, client: Client, field: str) -> None:
    shown = collected(api)
    _, csrf = open_form(client, shown)
    form = card_form(csrf)
    form[field] = form[field][:2] + "\x00" + form[field][2:]
    response = client.post(page_path(shown), form)
    assert response.status_code == 400
    assert f'id="err_{field}"' in response.content.decode()
    assert stored(shown).payment_details == {}


def test_hostile_form_bodies_never_cause_a_500(api: Any, client: Client) -> None:
    shown = collected(api, payment_method="bank_account")
    _, csrf = open_form(client, shown)
    for form in (
        {"csrf": csrf, "iban": "x" * 5000, "holder_name": "\u202e\ufeff" * 100},
        {"csrf": csrf, "iban": ["a", "b"], "account_number": "1234", "bank_code": "-"},
        {"csrf": csrf, "holder_name": "A", "save": "yes"},
    ):
        response = client.post(page_path(shown), form)
        assert response.status_code in (303, 400), response.status_code
