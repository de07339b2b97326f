"""Probes, docs and static assets served by the web process itself."""

from __future__ import annotations

from typing import Any

import pytest


def test_healthz(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_and_broker(client: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_names_what_is_down(client: Any, monkeypatch: Any) -> None:
    from kombu import Connection

    from paygate.celery import app

    # A real connection attempt, to a port where no broker listens.
    monkeypatch.setattr(app, "connection_for_write", lambda: Connection("redis://127.0.0.1:1/0"))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "down"
    assert "broker" in response.json()["error"]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "broker_url", ["redis://127.0.0.1:1/0", "amqp://guest:guest@127.0.0.1:1//"], ids=["redis", "rabbitmq"]
)
def test_readyz_reports_either_broker_down_when_it_does_not_answer(
    client: Any, monkeypatch: Any, broker_url: str
) -> None:
    from kombu import Connection

    from paygate.celery import app

    monkeypatch.setattr(app, "connection_for_write", lambda: Connection(broker_url, connect_timeout=2))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "down"}


def test_swagger_ui_and_its_assets_are_served_locally(client: Any) -> None:
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn" not in html.lower()
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


def test_admin_static_is_served(client: Any) -> None:
    assert client.get("/static/admin/css/base.css").status_code == 200
