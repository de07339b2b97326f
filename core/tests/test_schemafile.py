from __future__ import annotations

import json

import yaml
from django.test import Client

from core.schemafile import SCHEMA_FILE, schema_yaml


def test_the_committed_schema_is_what_the_code_serves() -> None:
    assert SCHEMA_FILE.read_text() == schema_yaml(), "docs/openapi.yaml is stale: run `make schema` and commit it"


def test_the_served_schema_is_the_committed_one_in_either_form() -> None:
    committed = yaml.safe_load(SCHEMA_FILE.read_text())
    as_yaml = Client().get("/api/schema/")
    as_json = Client().get("/api/schema/", {"format": "json"})
    assert as_yaml["Content-Type"].startswith("application/vnd.oai.openapi")
    assert as_json["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert yaml.safe_load(as_yaml.content) == committed
    assert json.loads(as_json.content) == committed
