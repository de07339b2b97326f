"""A gateway's base URL: credentials do not follow it, and it reaches only what it may (SSRF)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import reverse

from core.errors import ValidationFailed
from gateways.admin import GatewayForm
from gateways.models import Gateway
from gateways.services import gateway_check_health, gateway_save

pytestmark = pytest.mark.django_db

OLD_KEY = "old-api-key-0123456789"
OLD_SECRET = "old-webhook-secret-0123456789"


@pytest.fixture
def gateway() -> Gateway:
    return Gateway.objects.create(
        code="acme",
        name="Acme",
        data_format="json",
        base_url="http://127.0.0.1:8101",
        api_key=OLD_KEY,
        callback_secret=OLD_SECRET,
        previous_callback_secret="retired-secret",
    )


def form_data(gateway: Gateway, **changes: Any) -> dict[str, Any]:
    data = {
        "code": gateway.code,
        "name": gateway.name,
        "data_format": gateway.data_format,
        "base_url": gateway.base_url,
        "api_key": "",
        "callback_secret": "",
        "connect_timeout": gateway.connect_timeout,
        "read_timeout": gateway.read_timeout,
        "is_active": "on",
        "health_status": gateway.health_status,
        "consecutive_check_failures": 0,
        "consecutive_check_successes": 0,
    }
    data.update(changes)
    return data


def test_form_requires_new_credentials_when_the_base_url_changes(gateway: Gateway) -> None:
    form = GatewayForm(data=form_data(gateway, base_url="http://localhost:9999"), instance=gateway)
    assert not form.is_valid()
    assert "api_key" in form.errors and "callback_secret" in form.errors


def test_form_keeps_credentials_when_the_base_url_stays(gateway: Gateway) -> None:
    form = GatewayForm(data=form_data(gateway, name="Acme Pay", base_url="http://127.0.0.1:8101/"), instance=gateway)
    assert form.is_valid(), form.errors
    form.save()
    gateway.refresh_from_db()
    assert (gateway.name, gateway.api_key, gateway.callback_secret) == ("Acme Pay", OLD_KEY, OLD_SECRET)


def test_admin_change_of_base_url_stores_only_the_new_credentials(gateway: Gateway, client: Any) -> None:
    client.force_login(get_user_model().objects.create_superuser("ops", "", "pw-for-tests-only"))
    url = reverse("admin:gateways_gateway_change", args=[gateway.pk])

    refused = client.post(url, form_data(gateway, base_url="http://localhost:9999"))
    assert refused.status_code == 200 and "Required when the base URL changes" in refused.content.decode()
    gateway.refresh_from_db()
    assert (gateway.base_url, gateway.api_key) == ("http://127.0.0.1:8101", OLD_KEY)

    saved = client.post(
        url, form_data(gateway, base_url="http://localhost:9999", api_key="new-key", callback_secret="new-secret")
    )
    assert saved.status_code == 302
    gateway.refresh_from_db()
    assert (gateway.base_url, gateway.api_key, gateway.callback_secret) == (
        "http://localhost:9999",
        "new-key",
        "new-secret",
    )
    # The old address's secret is not accepted as a "previous" one either.
    assert gateway.previous_callback_secret == ""


def test_service_clears_credentials_not_given_with_a_new_base_url(gateway: Gateway) -> None:
    gateway.base_url = "http://localhost:9999"
    gateway.api_key = "new-key"
    gateway_save(gateway=gateway, credentials_replaced=["api_key"])
    gateway.refresh_from_db()
    assert gateway.api_key == "new-key"
    assert gateway.callback_secret == "" and gateway.previous_callback_secret == ""
    assert gateway.is_active is False  # no traffic without a full set of credentials

    gateway.base_url = "http://localhost:9998"
    gateway_save(gateway=gateway)
    gateway.refresh_from_db()
    assert gateway.api_key == ""


@override_settings(DEBUG=False, PAYGATE_GATEWAY_ALLOWED_HOSTS=[])
@pytest.mark.parametrize(
    "base_url",
    [
        "http://gw.example.com",
        "https://127.0.0.1:8101",
        "https://localhost",
        "https://[::1]",
        "https://[::ffff:169.254.169.254]",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.8",
    ],
)
def test_form_refuses_unsafe_base_urls_with_debug_off(gateway: Gateway, base_url: str) -> None:
    form = GatewayForm(
        data=form_data(gateway, base_url=base_url, api_key="k", callback_secret="s"),
        instance=gateway,
    )
    assert not form.is_valid()
    assert "base_url" in form.errors
    with pytest.raises(ValidationFailed):
        gateway.base_url = base_url
        gateway_save(gateway=gateway, credentials_replaced=["api_key", "callback_secret"])


@override_settings(DEBUG=False, PAYGATE_GATEWAY_ALLOWED_HOSTS=["acmepay.internal"])
def test_allow_listed_host_is_accepted_with_debug_off(gateway: Gateway) -> None:
    form = GatewayForm(
        data=form_data(gateway, base_url="http://acmepay.internal:8101", api_key="k", callback_secret="s"),
        instance=gateway,
    )
    assert form.is_valid(), form.errors


@override_settings(DEBUG=True, PAYGATE_GATEWAY_ALLOWED_HOSTS=[])
def test_debug_on_accepts_loopback_for_the_sandboxes(gateway: Gateway) -> None:
    form = GatewayForm(
        data=form_data(gateway, base_url="http://127.0.0.1:9999", api_key="k", callback_secret="s"), instance=gateway
    )
    assert form.is_valid(), form.errors


class Health(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "15")
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback_gateway(gateway: Gateway) -> Iterator[tuple[Gateway, list[str]]]:
    """The gateway, pointed (as if edited in the database) at a loopback server that counts calls."""
    handler = type("Handler", (Health,), {"hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Gateway.objects.filter(pk=gateway.pk).update(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    yield gateway, handler.hits
    server.shutdown()
    server.server_close()


def test_health_checks_are_refused_at_connect_time_with_debug_off(loopback_gateway: tuple[Gateway, list[str]]) -> None:
    gateway, hits = loopback_gateway
    with override_settings(DEBUG=False, PAYGATE_GATEWAY_ALLOWED_HOSTS=[]):
        checked = gateway_check_health(gateway_id=gateway.pk)
    assert checked is not None and checked.consecutive_check_failures == 1
    assert hits == []
    with override_settings(DEBUG=False, PAYGATE_GATEWAY_ALLOWED_HOSTS=["127.0.0.1"]):
        checked = gateway_check_health(gateway_id=gateway.pk)
    assert checked is not None and checked.health_status == Gateway.Health.HEALTHY
    assert hits == ["/health"]
