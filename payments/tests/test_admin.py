"""Every admin page renders for staff and sends anyone else to the login page."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils.html import escape as html_escape

from callbacks.models import CallbackEvent
from gateways.demo import demo_api_key, demo_callback_secret
from gateways.models import Gateway
from payments.models import Attempt, Transaction
from testing.factories import IBAN, deposit_body

DEPOSIT = deposit_body(customer_id="cus_1", metadata=None)


@pytest.fixture
def objects(api: Any, demo: None) -> Transaction:
    txn_id = api.post("/api/v1/deposits", data=json.dumps(DEPOSIT), content_type="application/json").json()["id"]
    txn = Transaction.objects.get(pk=txn_id)
    attempt = Attempt.objects.create(transaction=txn, number=1, gateway=Gateway.objects.get(code="acmepay"))
    CallbackEvent.objects.create(
        gateway=attempt.gateway,
        event_id="evt_1",
        reference=str(attempt.pk),
        status="completed",
        raw_body="{}",
        signature="current",
        signature_timestamp=0,
        transaction=txn,
        attempt=attempt,
    )
    return txn


@pytest.fixture
def staff_client(client: Any) -> Any:
    user = get_user_model().objects.create_superuser("ops", "", "pw-for-tests-only")
    client.force_login(user)
    return client


def admin_urls() -> list[str]:
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        opts = model._meta
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        first = model._default_manager.first()
        if first is not None:
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk]))
    return urls


def test_every_admin_page_renders_for_staff(objects: Transaction, staff_client: Any) -> None:
    urls = admin_urls()
    assert any("transaction" in url for url in urls) and any("callbackevent" in url for url in urls)
    for url in urls:
        response = staff_client.get(url)
        assert response.status_code == 200, url


def test_admin_needs_a_staff_login(objects: Transaction, client: Any) -> None:
    for url in admin_urls():
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url


def test_transaction_page_masks_payment_details(objects: Transaction, staff_client: Any) -> None:
    page = staff_client.get(reverse("admin:payments_transaction_change", args=[objects.pk])).content.decode()
    assert IBAN not in page
    assert "DE89************3000" in page


def test_transactions_are_read_only(objects: Transaction, staff_client: Any) -> None:
    url = reverse("admin:payments_transaction_change", args=[objects.pk])
    response = staff_client.post(url, {"status": "completed"})
    assert response.status_code == 403
    objects.refresh_from_db()
    assert objects.status == "pending"


def test_gateway_credentials_are_never_shown(objects: Transaction, staff_client: Any) -> None:
    gateway = Gateway.objects.get(code="acmepay")
    page = staff_client.get(reverse("admin:gateways_gateway_change", args=[gateway.pk])).content.decode()
    assert demo_api_key("acmepay") not in page and demo_callback_secret("acmepay") not in page


def test_route_priority_edit_in_place(objects: Transaction, staff_client: Any) -> None:
    from gateways.models import GatewayRoute

    route = GatewayRoute.objects.get(country__code="DE", gateway__code="soapbank")
    url = reverse("admin:gateways_gatewayroute_changelist")
    routes = list(GatewayRoute.objects.order_by("country__code", "priority", "id"))
    data = {"form-TOTAL_FORMS": str(len(routes)), "form-INITIAL_FORMS": str(len(routes)), "_save": "Save"}
    for i, r in enumerate(routes):
        data[f"form-{i}-id"] = str(r.pk)
        data[f"form-{i}-priority"] = "0" if r.pk == route.pk else str(r.priority)
        if r.is_active:
            data[f"form-{i}-is_active"] = "on"
    assert staff_client.post(url, data).status_code == 302
    route.refresh_from_db()
    assert route.priority == 0


def test_gateway_dashboard_renders_for_staff_only(objects: Transaction, staff_client: Any) -> None:
    from django.test import Client

    attempt = Attempt.objects.get()
    Attempt.objects.filter(pk=attempt.pk).update(outcome="accepted", latency_ms=12.5)
    Attempt.objects.create(
        transaction=objects,
        number=2,
        gateway=Gateway.objects.get(code="soapbank"),
        outcome="error",
        error="service_unavailable",
        latency_ms=3.0,
    )
    page = staff_client.get("/admin/dashboard/")
    assert page.status_code == 200
    stats = {s.gateway.code: s for s in page.context["stats"]}
    assert (stats["acmepay"].attempts, stats["acmepay"].accepted, stats["acmepay"].success_rate) == (1, 1, 100.0)
    assert (stats["soapbank"].faults, stats["soapbank"].success_rate) == (1, 0.0)
    assert stats["acmepay"].p50_ms == 12.5
    assert "DE #1" in stats["acmepay"].routes
    html = page.content.decode()
    assert "<svg" in html and "acmepay" in html
    assert "Gateway dashboard" in staff_client.get("/admin/").content.decode()
    anonymous = Client().get("/admin/dashboard/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


# --- Least privilege: model permissions, the operators and auditors groups ---------------------------

ADMIN_SECTIONS = ["/admin/dashboard/", "/admin/payments/", "/admin/gateways/", "/admin/callbacks/"]


def login_in_group(client: Any, group: str | None, username: str = "someone") -> Any:
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username, "", "pw-for-tests-only", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


def test_staff_without_permissions_gets_403_on_every_admin_page(objects: Transaction, client: Any) -> None:
    login_in_group(client, None)
    for url in admin_urls() + ADMIN_SECTIONS:
        assert client.get(url).status_code == 403, url


def test_the_staff_groups_grant_exactly_their_permissions(db: Any) -> None:
    from django.contrib.auth.models import Group

    def granted(name: str) -> set[str]:
        group = Group.objects.get(name=name)
        return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}

    looked_at = {"gateways.gateway", "gateways.gatewayroute", "gateways.country", "webhooks.webhookendpoint"}
    read_only = {
        "payments.transaction",
        "payments.attempt",
        "payments.event",
        "payments.refund",
        "payments.refundattempt",
        "callbacks.callbackevent",
        "webhooks.webhookdelivery",
        "webhooks.webhookdeliveryattempt",
        "vault.paymentmethod",
    }
    view = {f"{m.split('.')[0]}.view_{m.split('.')[1]}" for m in looked_at | read_only}
    change = {f"{m.split('.')[0]}.change_{m.split('.')[1]}" for m in looked_at}
    # Operators may delete a saved payment method (its details are erased), never change one.
    delete = {"vault.delete_paymentmethod"}
    assert granted("auditors") == view
    assert granted("operators") == view | change | delete


def test_an_auditor_sees_everything_and_changes_nothing(objects: Transaction, client: Any) -> None:
    from gateways.breaker import BreakerState, breaker_state

    login_in_group(client, "auditors")
    gateway = Gateway.objects.get(code="acmepay")
    visible = (
        "/admin/gateways/",
        "/admin/payments/transaction/",
        "/admin/payments/refund/",
        "/admin/callbacks/",
        "/admin/webhooks/",
        "/admin/vault/",
        "/admin/dashboard/",
    )
    for url in admin_urls() + ADMIN_SECTIONS:
        expected = 200 if url in ("/admin/", "/admin/payments/") or url.startswith(visible) else 403
        assert client.get(url).status_code == expected, url
    change_url = reverse("admin:gateways_gateway_change", args=[gateway.pk])
    assert client.post(change_url, {"name": "renamed"}).status_code == 403
    # Admin actions need the change permission too: the breaker stays closed.
    client.post(
        reverse("admin:gateways_gateway_changelist"), {"action": "open_breaker", "_selected_action": [gateway.pk]}
    )
    assert breaker_state(gateway.pk) == BreakerState.CLOSED
    gateway.refresh_from_db()
    assert gateway.name != "renamed"


def test_an_operator_edits_gateways_and_only_views_transactions(objects: Transaction, client: Any) -> None:
    login_in_group(client, "operators")
    gateway = Gateway.objects.get(code="acmepay")
    page = client.get(reverse("admin:payments_transaction_change", args=[objects.pk]))
    assert page.status_code == 200 and "DE89************3000" in page.content.decode()
    assert client.post(reverse("admin:payments_transaction_change", args=[objects.pk]), {}).status_code == 403
    assert client.get(reverse("admin:payments_apiclient_changelist")).status_code == 403
    assert client.get("/admin/dashboard/").status_code == 200
    client.post(
        reverse("admin:gateways_gateway_changelist"),
        {"action": "disable_gateways", "_selected_action": [gateway.pk]},
    )
    gateway.refresh_from_db()
    assert gateway.is_active is False


def test_the_demo_login_is_an_operator_not_a_superuser(db: Any) -> None:
    from django.core.management import call_command

    call_command("seed_demo", "--staff", "--demo")
    user = get_user_model().objects.get(username="admin")
    assert user.is_staff and not user.is_superuser
    assert list(user.groups.values_list("name", flat=True)) == ["operators"]
    assert user.check_password("paygate-demo")


# --- What an operator reads: amounts, names, the review flag ------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount", "shown"),
    [("GBP", "13", "13.00 GBP"), ("JPY", "1500", "1500 JPY"), ("KWD", "2.5", "2.500 KWD")],
    ids=["gbp-2", "jpy-0", "kwd-3"],
)
def test_amounts_show_the_currency_minor_units(
    make_transaction: Any, staff_client: Any, currency: str, amount: str, shown: str
) -> None:
    from decimal import Decimal

    txn = make_transaction(amount=Decimal(amount), currency=currency)
    stored = format(Transaction.objects.get(pk=txn.pk).amount, "f")
    assert stored.partition(".")[2] in ("0000", "5000")  # stored with four places, whatever the currency
    listing = staff_client.get(reverse("admin:payments_transaction_changelist")).content.decode()
    assert f'<td class="field-amount_in_currency">{shown}</td>' in listing
    page = staff_client.get(reverse("admin:payments_transaction_change", args=[txn.pk])).content.decode()
    assert f'<div class="readonly">{shown}</div>' in page
    assert stored not in listing and stored not in page


def test_attempt_and_callback_rows_are_named_for_people(objects: Transaction, staff_client: Any) -> None:
    page = staff_client.get(reverse("admin:payments_transaction_change", args=[objects.pk])).content.decode()
    assert "Attempt 1 at acmepay" in page and "evt_1 from acmepay" in page
    assert f"{objects.pk}#1@" not in page and ":evt_1" not in page


def review_field(page: str) -> str:
    found = re.search(r'<div class="form-row field-review">(.*?)<div class="form-row ', page, re.S)
    assert found, "no Needs review field"
    return found.group(1)


def test_needs_review_explains_itself_only_when_set(make_transaction: Any, staff_client: Any) -> None:
    from payments.admin import REVIEW_EXPIRED, REVIEW_PAYMENT_ID

    fine = make_transaction(status="completed")
    expired = make_transaction(status="failed", failure_reason="expired", needs_review=True)
    doubtful = make_transaction(status="completed", needs_review=True)

    def field(txn: Transaction) -> str:
        return review_field(
            staff_client.get(reverse("admin:payments_transaction_change", args=[txn.pk])).content.decode()
        )

    unset = field(fine)
    assert '<div class="readonly">No</div>' in unset
    assert "gateway" not in unset and "help" not in unset and "operator should look" not in unset
    assert "<strong>Yes</strong>" in field(expired) and html_escape(REVIEW_EXPIRED) in field(expired)
    assert "<strong>Yes</strong>" in field(doubtful) and html_escape(REVIEW_PAYMENT_ID) in field(doubtful)
