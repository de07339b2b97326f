"""The endpoint admin: who may rotate a signing secret, and how a new secret is shown."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from gateways.services import demo_seed
from payments.services import api_key_create
from webhooks.models import WebhookEndpoint
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(db: Any, settings: Any) -> WebhookEndpoint:
    settings.PAYGATE_WEBHOOK_ALLOW_PRIVATE = True
    demo_seed()
    client_row, _ = api_key_create(client_name="merchant")
    return webhook_endpoint_create(client=client_row, url="https://hooks.example.com/in", events=["*"]).endpoint


def _login(client: Any, group: str) -> Any:
    user = get_user_model().objects.create_user(group, "", "pw-for-tests-only", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


def _rotate(client: Any, endpoint: WebhookEndpoint) -> Any:
    return client.post(
        reverse("admin:webhooks_webhookendpoint_changelist"),
        {"action": "rotate_secret", "_selected_action": [endpoint.pk]},
    )


def _shown_once(response: Any) -> None:
    assert response.status_code == 200, response.content
    assert "Signing secret, shown once" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert "messages" not in response.cookies, "a secret must never travel in the messages cookie"


def test_an_auditor_who_may_only_view_endpoints_cannot_rotate_a_secret(endpoint: WebhookEndpoint, client: Any) -> None:
    before = endpoint.secret

    response = _rotate(_login(client, "auditors"), endpoint)

    endpoint.refresh_from_db()
    assert endpoint.secret == before
    assert b"whsec_" not in response.content
    assert "whsec_" not in str(response.cookies)


def test_an_operator_rotates_and_sees_the_new_secret_once_on_a_page_of_its_own(
    endpoint: WebhookEndpoint, client: Any
) -> None:
    before = endpoint.secret

    response = _rotate(_login(client, "operators"), endpoint)

    endpoint.refresh_from_db()
    assert endpoint.secret != before
    _shown_once(response)
    assert endpoint.secret in response.content.decode()
    # Not shown again: the change list names no secret.
    assert endpoint.secret not in client.get(reverse("admin:webhooks_webhookendpoint_changelist")).content.decode()


def test_a_secret_made_by_adding_an_endpoint_is_shown_on_its_own_page(
    endpoint: WebhookEndpoint, client: Any, admin_user: Any
) -> None:
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"client": endpoint.client_id, "url": "https://hooks.example.com/two", "events": ["*"], "active": "on"},
    )

    _shown_once(response)
    created = WebhookEndpoint.objects.get(url="https://hooks.example.com/two")
    assert created.secret in response.content.decode()
