from __future__ import annotations

from pathlib import Path

import yaml
from django.core.management import call_command


def test_openapi_schema_validates_without_warnings(tmp_path: Path) -> None:
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    paths = schema["paths"]
    for path in (
        "/api/v1/deposits",
        "/api/v1/withdrawals",
        "/api/v1/transactions",
        "/api/v1/transactions/{transaction_id}",
        "/api/v1/callbacks/{gateway_code}",
    ):
        assert path in paths, path
    # Named as the README and the contract name them: no trailing slash.
    assert not [p for p in paths if p.endswith("/")]
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "Authorization"
