"""Demo data only on request: the published demo credentials never reach a production database."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command

from gateways.models import Gateway
from testing.stack import ROOT


def test_seed_demo_refuses_with_debug_off_unless_told_it_is_a_demo(db: Any, settings: Any) -> None:
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--demo"):
        call_command("seed_demo")
    with pytest.raises(CommandError, match="--demo"):
        call_command("seed_demo", "--staff")
    assert not Gateway.objects.exists()
    call_command("seed_demo", "--demo")
    assert set(Gateway.objects.values_list("code", flat=True)) == {"acmepay", "soapbank", "globex"}


def test_seed_demo_runs_as_before_in_development(db: Any, settings: Any) -> None:
    settings.DEBUG = True
    call_command("seed_demo")
    assert Gateway.objects.count() == 3


def test_the_production_compose_file_seeds_no_demo() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    def command(service: dict[str, Any]) -> str:
        value = service.get("command") or ""
        return value if isinstance(value, str) else " ".join(value)

    production = {name: s for name, s in services.items() if not s.get("profiles")}
    demo = {name: s for name, s in services.items() if "demo" in s.get("profiles", [])}
    assert {"migrate", "web", "worker", "beat"} <= set(production)
    assert not [name for name, s in production.items() if "seed_demo" in command(s)]
    # The demo profile brings the seeding (told it is a demo: DEBUG is off there) and the sandboxes.
    seeding = [name for name, s in demo.items() if "seed_demo" in command(s)]
    assert len(seeding) == 1 and "--demo" in command(demo[seeding[0]])
    assert {"acmepay", "soapbank", "globex"} <= set(demo)
    assert demo[seeding[0]]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
