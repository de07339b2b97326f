"""Webhook endpoints through the API (CONTRACT §8): shape, secret shown once, URL rules, cap, isolation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from webhooks.models import WebhookEndpoint
from webhooks.services import URL_REFUSED

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/paygate"


def post(api: Any, body: Any, path: str = "/api/v1/webhook-endpoints") -> Any:
    return api.post(path, data=json.dumps(body), content_type="application/json")


@pytest.fixture(autouse=True)
def public_names_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    """hooks.example.com stands for a public address (no DNS here); other names resolve as the system says."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host).endswith("example.com"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port or 443))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_create_answers_201_with_the_secret_once_then_never(api: Any) -> None:
    response = post(api, {"url": URL, "events": ["transaction.completed", "refund.*"]})

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "url", "events", "active", "secret", "created_at"}
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 30
    assert body["events"] == ["transaction.completed", "refund.*"] and body["active"] is True
    shown = api.get(f"/api/v1/webhook-endpoints/{body['id']}").json()
    assert "secret" not in shown and shown["url"] == URL
    listed = api.get("/api/v1/webhook-endpoints").json()["results"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    # Encrypted at rest: the column does not hold the secret.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM webhooks_webhookendpoint")
        (stored,) = cursor.fetchone()
    assert body["secret"].encode() not in bytes(stored if not isinstance(stored, str) else stored.encode())


def test_patch_and_delete(api: Any) -> None:
    endpoint = post(api, {"url": URL, "events": ["*"]}).json()
    path = f"/api/v1/webhook-endpoints/{endpoint['id']}"

    patched = api.patch(
        path, data=json.dumps({"active": False, "events": ["transaction.failed"]}), content_type="application/json"
    )
    assert patched.status_code == 200
    assert patched.json()["active"] is False and patched.json()["events"] == ["transaction.failed"]
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    assert api.delete(path).status_code == 404
    assert endpoint["id"] not in [item["id"] for item in api.get("/api/v1/webhook-endpoints").json()["results"]]


def test_another_client_sees_none_of_them(api: Any, other_api: Any) -> None:
    endpoint = post(api, {"url": URL, "events": ["*"]}).json()
    path = f"/api/v1/webhook-endpoints/{endpoint['id']}"
    assert other_api.get(path).status_code == 404
    assert other_api.patch(path, data=json.dumps({"active": False}), content_type="application/json").status_code == 404
    assert other_api.delete(path).status_code == 404
    assert other_api.get("/api/v1/webhook-endpoints").json()["results"] == []
    assert WebhookEndpoint.objects.get(pk=endpoint["id"]).active is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://hooks.example.com/x", "events": ["*"]}, "url"),  # https required with DEBUG off
        ({"url": "https://127.0.0.1/x", "events": ["*"]}, "url"),  # loopback
        ({"url": "https://10.1.2.3/x", "events": ["*"]}, "url"),  # private
        ({"url": "https://169.254.169.254/latest", "events": ["*"]}, "url"),  # link-local (cloud metadata)
        ({"url": "ftp://hooks.example.com/x", "events": ["*"]}, "url"),
        ({"url": "not a url", "events": ["*"]}, "url"),
        ({"url": 42, "events": ["*"]}, "url"),
        ({"url": URL, "events": []}, "events"),
        ({"url": URL, "events": ["transaction.nope"]}, "events"),
        ({"url": URL, "events": "*"}, "events"),
        ({"url": URL, "events": [1]}, "events"),
        ({"url": URL, "events": ["*"], "active": "yes"}, "active"),
        ({"url": URL, "events": ["*"], "secret": "mine"}, "secret"),
        ({"events": ["*"]}, "url"),
    ],
)
def test_invalid_endpoints_are_400_naming_the_field(api: Any, body: dict[str, Any], field: str) -> None:
    response = post(api, body)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost/x",
        "https://127.0.0.1/x",
        "https://[fec0::1]/x",
        "https://no-such-host.invalid/x",
        "https://hooks.example.com:6379/x",
        "https://hooks.example.com:22/x",
    ],
)
def test_a_refused_url_gets_one_generic_answer_naming_no_address(api: Any, url: str) -> None:
    """Whether a name resolves, to what, and which ports answer are not for a merchant to map."""
    response = post(api, {"url": url, "events": ["*"]})

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["message"] == error["fields"]["url"][0] == URL_REFUSED
    assert "127.0.0.1" not in response.content.decode() and "resolve" not in response.content.decode()


def test_other_ports_are_allowed_when_the_setting_lists_them(api: Any, settings: Any) -> None:
    settings.PAYGATE_WEBHOOK_ALLOWED_PORTS = ["443", "8443"]
    assert post(api, {"url": "https://hooks.example.com:8443/x", "events": ["*"]}).status_code == 201


def test_private_addresses_are_allowed_when_the_setting_says_so(api: Any, settings: Any) -> None:
    settings.PAYGATE_WEBHOOK_ALLOW_PRIVATE = True
    assert post(api, {"url": "http://127.0.0.1:9/x", "events": ["*"]}).status_code == 201


def test_a_client_has_at_most_the_configured_number_of_endpoints(api: Any, settings: Any) -> None:
    settings.PAYGATE_WEBHOOK_MAX_ENDPOINTS = 2
    assert post(api, {"url": URL, "events": ["*"]}).status_code == 201
    assert post(api, {"url": URL + "2", "events": ["*"]}).status_code == 201
    third = post(api, {"url": URL + "3", "events": ["*"]})
    assert third.status_code == 422
    assert third.json()["error"]["code"] == "endpoint_limit_reached"


def test_json_only(api: Any) -> None:
    response = api.post(
        "/api/v1/webhook-endpoints", data="<endpoint><url>x</url></endpoint>", content_type="application/xml"
    )
    assert response.status_code == 415


def test_redeliver_is_limited_per_event_and_per_client(api: Any, settings: Any, demo: None) -> None:
    from django.core.cache import cache

    cache.clear()
    settings.PAYGATE_REDELIVER_RATE_PER_EVENT = "2/hour"
    settings.PAYGATE_REDELIVER_RATE_PER_CLIENT = "3/hour"
    deposit = {"customer_id": "cus_r", "country": "DE", "amount": "10.00", "currency": "EUR"}
    for customer in ("cus_r1", "cus_r2"):
        assert post(api, {**deposit, "customer_id": customer}, "/api/v1/deposits").status_code == 202
    first, second = [item["id"] for item in api.get("/api/v1/events").json()["results"][:2]]

    assert [api.post(f"/api/v1/events/{first}/redeliver").status_code for _ in range(2)] == [202, 202]
    refused = api.post(f"/api/v1/events/{first}/redeliver")  # the event's limit
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
    assert api.post(f"/api/v1/events/{second}/redeliver").status_code == 429  # the client's limit (4th call)
    settings.PAYGATE_REDELIVER_RATE_PER_CLIENT = "100/hour"
    assert api.post(f"/api/v1/events/{second}/redeliver").status_code == 202  # another event: its own count


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/x#fragment",  # Django's URLValidator takes these three;
        "https://hooks.example.com/caf\u00e9",  # the schema's pattern does not, so neither does the API
        "https://hooks.example.com/x?a=b c",
        "https://hooks..example.com/x",
        "http://hooks.example.com:67095/x",  # no such port
        "http://hooks.example.com:0/x",
        "https://hooks.example.com/s$n%Op",  # a % that escapes nothing: not a URI
    ],
)
def test_a_url_outside_the_schema_s_pattern_is_refused_on_create_and_patch(api: Any, url: str) -> None:
    assert post(api, {"url": url, "events": ["*"]}).status_code == 400
    endpoint = post(api, {"url": URL, "events": ["*"]}).json()
    patched = api.patch(
        f"/api/v1/webhook-endpoints/{endpoint['id']}", data=json.dumps({"url": url}), content_type="application/json"
    )
    assert patched.status_code == 400, patched.content
    assert "url" in patched.json()["error"]["fields"]
    assert WebhookEndpoint.objects.get().url == URL


def test_the_schema_states_the_url_check_s_own_pattern() -> None:
    import yaml
    from django.test import Client

    from webhooks.services import WEBHOOK_URL_PATTERN

    schema = yaml.safe_load(Client().get("/api/schema/").content)["components"]["schemas"]
    url_patterns = {
        body["properties"]["url"]["pattern"]
        for name, body in schema.items()
        if name.startswith("WebhookEndpoint")
        and "url" in body.get("properties", {})
        and "pattern" in body["properties"]["url"]
    }
    assert url_patterns == {WEBHOOK_URL_PATTERN}
