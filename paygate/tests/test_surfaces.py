"""What every HTTP surface promises: body limits, caching, /metrics, admin sessions, CSP."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from testing.factories import deposit_body

DEPOSIT = deposit_body(metadata=None)


class UnreadableStream(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")

    def readline(self, size: int | None = -1) -> bytes:
        raise AssertionError("the body was read")


class CountingStream(io.BytesIO):
    """A streamed body that remembers how much of it was read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


# --- One body limit for every path, checked before the body is read ---------------------------------


@pytest.mark.parametrize(
    "path", ["/admin/login/", "/admin/gateways/gateway/add/", "/healthz", "/api/v1/deposits"], ids=str
)
def test_an_oversized_body_is_413_before_anything_reads_it(path: str, settings: Any) -> None:
    response = Client().post(
        path,
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(20 * 1024 * 1024),
        **{"wsgi.input": UnreadableStream()},
    )
    assert response.status_code == 413
    if path.startswith("/api/"):
        assert response.json()["error"]["code"] == "payload_too_large"
    else:
        assert response["Content-Type"].startswith("text/plain")


def test_a_streamed_body_over_the_limit_is_413_and_read_no_further(settings: Any) -> None:
    settings.PAYGATE_MAX_BODY_BYTES = 1024
    stream = CountingStream(b"x" * (1024 * 1024))
    response = Client().post(
        "/admin/login/",
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": stream},
    )
    assert response.status_code == 413
    assert stream.consumed <= 1025


@pytest.mark.django_db
def test_a_streamed_api_body_within_the_limit_is_processed_and_over_it_is_413(
    api: Any, settings: Any, demo: None
) -> None:
    body = json.dumps(DEPOSIT).encode()
    chunked = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}
    accepted = api.post(
        "/api/v1/deposits", content_type="application/json", **chunked, **{"wsgi.input": io.BytesIO(body)}
    )
    assert accepted.status_code == 202, accepted.content
    settings.PAYGATE_MAX_BODY_BYTES = len(body) - 1
    refused = api.post(
        "/api/v1/deposits", content_type="application/json", **chunked, **{"wsgi.input": io.BytesIO(body)}
    )
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "payload_too_large"


# --- Cache-Control: no-store on the API ------------------------------------------------------------


@pytest.mark.django_db
def test_api_responses_are_never_stored(api: Any, demo: None) -> None:
    created = api.post("/api/v1/deposits", data=json.dumps(DEPOSIT), content_type="application/json")
    responses = [
        created,
        api.get(f"/api/v1/transactions/{created.json()['id']}"),
        api.get("/api/v1/transactions"),
        api.get("/api/v1/transactions/00000000-0000-0000-0000-000000000000"),
        Client().get("/api/v1/transactions"),
    ]
    assert [r.status_code for r in responses] == [202, 200, 200, 404, 401]
    for response in responses:
        assert response["Cache-Control"] == "no-store"


# --- /metrics ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_needs_the_bearer_token(client: Any, settings: Any) -> None:
    settings.DEBUG = False
    settings.PAYGATE_METRICS_TOKEN = "s3cret-scrape-token"
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic s3cret-scrape-token").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert ok.status_code == 200 and b"paygate_gateway_healthy" in ok.content


@pytest.mark.django_db
def test_metrics_without_a_token_is_404_in_production_and_open_in_development(client: Any, settings: Any) -> None:
    settings.PAYGATE_METRICS_TOKEN = ""
    settings.DEBUG = False
    assert client.get("/metrics").status_code == 404
    settings.DEBUG = True
    assert client.get("/metrics").status_code == 200


# --- Admin sessions and the Content-Security-Policy ---------------------------------------------------


@pytest.fixture
def staff(db: Any, client: Any) -> Any:
    user = get_user_model().objects.create_superuser("ops", "", "pw-for-tests-only")
    client.force_login(user)
    return client


def test_admin_sessions_end_after_15_idle_minutes(staff: Any) -> None:
    response = staff.get("/admin/")
    assert response.status_code == 200
    # Every admin request renews the session for another 15 minutes, no more.
    assert response.cookies["sessionid"]["max-age"] == 900
    session = Session.objects.get()
    assert 890 <= (session.expire_date - timezone.now()).total_seconds() <= 900
    Session.objects.update(expire_date=timezone.now() - timezone.timedelta(seconds=1))
    expired = staff.get("/admin/")
    assert expired.status_code == 302 and "/admin/login/" in expired["Location"]


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>\s*\S", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style|\sstyle=\"", re.IGNORECASE)


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/login/",
        "/admin/dashboard/",
        "/admin/gateways/gatewayroute/",
        "/admin/gateways/country/add/",
        "/admin/gateways/gateway/add/",
        "/api/docs/",
    ],
    ids=str,
)
def test_admin_and_docs_pages_send_a_strict_csp_they_comply_with(path: str, staff: Any, demo: None) -> None:
    response = (Client() if path == "/admin/login/" else staff).get(path)
    assert response.status_code == 200
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in response["Content-Security-Policy"]
    html = response.content.decode()
    assert not INLINE_SCRIPT.search(html), INLINE_SCRIPT.search(html)
    assert not INLINE_STYLE.search(html), INLINE_STYLE.search(html)


def test_the_swagger_ui_start_script_is_served_from_this_origin(client: Any) -> None:
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content and b"/api/schema/" in script.content
