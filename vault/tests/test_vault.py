"""Saved payment methods (CONTRACT §12): saved on completion, listed masked, used instead of details,
forgotten on delete, under keys of their own, untouched by the retention purge."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from core.encryption import encryption_keys_rotate
from payments.models import Event, Transaction
from payments.services import api_key_create, payment_details_purge, transaction_lock, transaction_transition
from testing.factories import BANK as IBAN
from testing.factories import CARD, deposit_body
from vault.models import PaymentMethod

DEPOSIT = deposit_body(payment_details=None, metadata=None)


def post(api: Any, body: dict[str, Any], path: str = "/api/v1/deposits") -> Any:
    return api.post(path, data=json.dumps(body), content_type="application/json")


def finish(txn_id: str, to: str = "completed") -> None:
    with transaction.atomic():
        locked = transaction_lock(txn_id)
        transaction_transition(locked, to=to, failure_reason="gateway_failed" if to == "failed" else None)


def saved_card(api: Any, customer: str = "cus_42", details: dict[str, str] = CARD) -> str:
    body = post(
        api,
        {
            **DEPOSIT,
            "customer_id": customer,
            "payment_method": "card",
            "payment_details": details,
            "save_payment_method": True,
        },
    )
    assert body.status_code == 202, body.content
    finish(body.json()["id"])
    [method] = api.get(f"/api/v1/customers/{customer}/payment-methods").json()["payment_methods"]
    return str(method["id"])


def test_a_completed_deposit_that_asked_saves_its_method_without_the_cvc(demo: None, api: Any) -> None:
    body = post(api, {**DEPOSIT, "payment_method": "card", "payment_details": CARD, "save_payment_method": True})
    assert body.status_code == 202
    assert api.get("/api/v1/customers/cus_42/payment-methods").json() == {"payment_methods": []}
    finish(body.json()["id"])
    [listed] = api.get("/api/v1/customers/cus_42/payment-methods").json()["payment_methods"]
    assert listed["id"].startswith("pm_") and listed["type"] == "card"
    assert {k: listed[k] for k in ("last4", "exp_month", "exp_year", "customer_id")} == {
        "last4": "4242",
        "exp_month": "12",
        "exp_year": "2030",
        "customer_id": "cus_42",
    }
    stored = PaymentMethod.objects.get(pk=listed["id"])
    assert stored.details == {k: v for k, v in CARD.items() if k != "cvc"}
    event = Event.objects.get(type="payment_method.saved")
    assert event.data["object"] == listed and event.transaction_id == stored.source_transaction_id
    # The feed shows it to the merchant.
    types = [e["type"] for e in api.get("/api/v1/events").json()["results"]]
    assert "payment_method.saved" in types


@pytest.mark.parametrize("final", ["failed"])
def test_a_failed_deposit_saves_nothing(demo: None, api: Any, final: str) -> None:
    body = post(api, {**DEPOSIT, "payment_method": "card", "payment_details": CARD, "save_payment_method": True})
    finish(body.json()["id"], to=final)
    assert not PaymentMethod.objects.exists()


def test_without_asking_nothing_is_saved(demo: None, api: Any) -> None:
    finish(post(api, {**DEPOSIT, "payment_method": "card", "payment_details": CARD}).json()["id"])
    assert not PaymentMethod.objects.exists()


@pytest.mark.parametrize(
    ("body", "path", "field"),
    [
        ({"save_payment_method": True}, "/api/v1/deposits", "save_payment_method"),  # free-form details
        ({"payment_method": "redirect", "save_payment_method": True}, "/api/v1/deposits", "save_payment_method"),
        (
            {"payment_method": "bank_account", "payment_details": IBAN, "save_payment_method": True},
            "/api/v1/withdrawals",
            "save_payment_method",
        ),
        ({"save_payment_method": "yes"}, "/api/v1/deposits", "save_payment_method"),
        ({"payment_method_id": "pm_x", "payment_details": CARD}, "/api/v1/deposits", "payment_details"),
    ],
    ids=["free-form", "redirect", "withdrawal", "not-a-boolean", "id-and-details"],
)
def test_what_cannot_be_saved_or_combined_is_a_400(
    demo: None, api: Any, body: dict[str, Any], path: str, field: str
) -> None:
    response = post(api, {**DEPOSIT, **body}, path=path)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


def test_a_saved_method_pays_a_second_deposit_and_a_payout(demo: None, api: Any) -> None:
    method_id = saved_card(api)
    second = post(api, {**DEPOSIT, "payment_method_id": method_id})
    assert second.status_code == 202, second.content
    shown = second.json()
    assert shown["payment_method"] == "card" and shown["payment_details"]["number"] == "424242******4242"
    txn = Transaction.objects.get(pk=shown["id"])
    assert txn.payment_details == {k: v for k, v in CARD.items() if k != "cvc"}
    assert txn.saved_method_id == method_id
    payout = post(api, {**DEPOSIT, "payment_method_id": method_id, "payment_method": "card"}, "/api/v1/withdrawals")
    assert payout.status_code == 202, payout.content


def test_another_customers_another_clients_a_deleted_and_an_unknown_id_are_refused_alike(
    demo: None, api: Any, client: Any
) -> None:
    mine = saved_card(api)
    other_customer = saved_card(api, customer="cus_43")
    deleted = saved_card(api, customer="cus_44")
    assert api.delete(f"/api/v1/payment-methods/{deleted}").status_code == 204

    from rest_framework.test import APIClient

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_create(client_name='merchant-b')[1]}")

    answers = [
        post(api, {**DEPOSIT, "payment_method_id": other_customer}),
        post(api, {**DEPOSIT, "customer_id": "cus_44", "payment_method_id": deleted}),
        post(api, {**DEPOSIT, "payment_method_id": "pm_000000000000000000000000"}),
        post(other, {**DEPOSIT, "payment_method_id": mine}),
        post(api, {**DEPOSIT, "payment_method_id": mine, "payment_method": "bank_account"}),
    ]
    bodies = [(a.status_code, a.json()) for a in answers]
    assert all(body == bodies[0] for body in bodies), bodies
    assert bodies[0][0] == 400 and list(bodies[0][1]["error"]["fields"]) == ["payment_method_id"]
    # Another client cannot list or delete it either.
    assert other.get("/api/v1/customers/cus_42/payment-methods").json() == {"payment_methods": []}
    assert other.delete(f"/api/v1/payment-methods/{mine}").status_code == 404


def test_delete_erases_the_details_and_tells_the_merchant(demo: None, api: Any) -> None:
    method_id = saved_card(api)
    assert api.delete(f"/api/v1/payment-methods/{method_id}").status_code == 204
    stored = PaymentMethod.objects.get(pk=method_id)
    assert stored.details == {} and stored.deleted_at is not None
    assert api.get("/api/v1/customers/cus_42/payment-methods").json() == {"payment_methods": []}
    assert api.delete(f"/api/v1/payment-methods/{method_id}").status_code == 404
    assert Event.objects.filter(type="payment_method.deleted", data__object__id=method_id).exists()


def test_the_vault_is_encrypted_under_its_own_keys_and_rotates(demo: None, api: Any, settings: Any) -> None:
    method_id = saved_card(api)
    with connection.cursor() as cursor:
        cursor.execute("SELECT details FROM vault_paymentmethod WHERE id = %s", [method_id])
        raw = bytes(cursor.fetchone()[0])
    assert CARD["number"].encode() not in raw
    settings.PAYGATE_VAULT_KEYS = ["vault-key-new-0123456789abcdefghijklmnopqrstuv", *settings.PAYGATE_VAULT_KEYS]
    report = encryption_keys_rotate()
    assert report.per_column["vault.PaymentMethod.details"] == 1 and report.unreadable == 0
    settings.PAYGATE_VAULT_KEYS = settings.PAYGATE_VAULT_KEYS[:1]  # the old key retired
    assert PaymentMethod.objects.get(pk=method_id).details["number"] == CARD["number"]
    # FERNET_KEYS alone cannot read it.
    settings.PAYGATE_VAULT_KEYS = settings.FERNET_KEYS
    with pytest.raises(Exception):  # noqa: B017  # fernet's InvalidToken, whichever wrapper raises it
        PaymentMethod.objects.get(pk=method_id).details  # noqa: B018


def test_the_retention_purge_never_touches_a_saved_method(demo: None, api: Any, settings: Any) -> None:
    method_id = saved_card(api)
    settings.PAYGATE_PAYMENT_DETAILS_RETENTION_DAYS = 0
    assert payment_details_purge(now=timezone.now() + timedelta(days=1)) == 1
    assert PaymentMethod.objects.get(pk=method_id).details["number"] == CARD["number"]


def test_the_admin_shows_methods_masked_view_only_and_deletes_through_the_service(
    demo: None, api: Any, client: Any
) -> None:
    method_id = saved_card(api)
    client.force_login(get_user_model().objects.create_superuser("ops", "", "pw-for-tests-only"))
    page = client.get(reverse("admin:vault_paymentmethod_change", args=[method_id])).content.decode()
    assert "4242" in page and CARD["number"] not in page and CARD["holder_name"] not in page
    assert 'name="last4"' not in page and 'name="type"' not in page  # view only: no form fields
    assert client.get(reverse("admin:vault_paymentmethod_add")).status_code == 403
    response = client.post(reverse("admin:vault_paymentmethod_delete", args=[method_id]), {"post": "yes"})
    assert response.status_code == 302
    assert PaymentMethod.objects.get(pk=method_id).details == {}


def test_operators_view_and_delete_auditors_only_view(db: Any) -> None:
    from django.contrib.auth.models import Group

    def codenames(group: str) -> set[str]:
        return set(
            Group.objects.get(name=group)
            .permissions.filter(content_type__app_label="vault")
            .values_list("codename", flat=True)
        )

    assert codenames("operators") == {"view_paymentmethod", "delete_paymentmethod"}
    assert codenames("auditors") == {"view_paymentmethod"}
