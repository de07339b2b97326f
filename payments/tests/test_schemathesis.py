from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from paygate.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application).include(path_regex=r"^/api/v1/")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def keys(db):
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    from gateways.services import demo_seed
    from payments.services import api_key_create
    demo_seed()
    return {"a": api_key_create(client_name="schemathesis-a")[1], "b": api_key_create(client_name="schemathesis-b")[1]}


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_api(case, keys):
    case.call_and_validate(headers={"Authorization": f"Api-Key {keys['b']}"}, checks=CHECKS)
