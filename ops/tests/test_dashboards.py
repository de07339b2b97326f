"""Grafana dashboards as code, the compose `monitoring` profile and the configuration it mounts."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import ROOT
from ops.grafana.generate import DASHBOARDS_DIR, dashboards, panel_queries, render
from testing.monitoring import RULE_FILES, require_tool, run_tool

# Exported by the webhooks and refunds apps; every other name must be exported here.
EXTERNAL_SERIES = {
    "paygate_webhook_deliveries_total",
    "paygate_webhook_oldest_undelivered_age_seconds",
    "paygate_webhook_endpoints_failing",
    "paygate_refunds",
    "paygate_refund_oldest_open_age_seconds",
    "paygate_refunds_needing_review",
    "paygate_callbacks_total",
    "paygate_auth_failures_total",
    "paygate_admin_lockouts",
    "up",
}
# Grafana's variables, replaced by a value of the right kind so that promtool can parse the query.
VARIABLES = {"$__rate_interval": "5m", "$gateway": ".+", "$country": "DE"}


def _all_queries() -> list[str]:
    return [query for board in dashboards().values() for query in panel_queries(board)]


def _rule_exprs() -> list[str]:
    groups = [group for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_the_committed_dashboards_are_what_the_generator_writes() -> None:
    generated = dashboards()
    assert {path.name for path in DASHBOARDS_DIR.glob("*.json")} == set(generated)
    for name, board in generated.items():
        assert (DASHBOARDS_DIR / name).read_text() == render(board), f"run `make dashboards`: {name} is stale"


def test_the_four_dashboards_and_their_panels() -> None:
    boards = {board["uid"]: board for board in dashboards().values()}
    assert set(boards) == {"paygate-gateways", "paygate-country", "paygate-pipeline", "paygate-webhooks"}
    for board in boards.values():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)) and all(ids), board["uid"]
        for panel in board["panels"]:
            assert panel["targets"] and panel["datasource"]["uid"] == "prometheus", panel["title"]
            position = panel["gridPos"]
            assert position["x"] + position["w"] <= 24


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as the expression of a recording rule."""
    promtool = require_tool("promtool")
    rules = []
    for index, query in enumerate(_all_queries()):
        for variable, value in VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, query
        rules.append({"record": f"dashboard_query_{index}", "expr": query})
    path = tmp_path / "dashboard-queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in run_tool([promtool, "check", "rules", path]).stdout


@pytest.mark.django_db
def test_every_series_a_query_or_rule_reads_exists(client: Any, settings: Any, demo: None) -> None:
    """A misspelt metric name is valid PromQL too: each one read must be exported or recorded."""
    from prometheus_client.parser import text_string_to_metric_families

    settings.PAYGATE_METRICS_TOKEN = "t"
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t").content.decode()
    exported = {family.name for family in text_string_to_metric_families(text)}
    # The counters and histograms of every app, exported once something happened.
    for app in ("core", "gateways", "payments", "callbacks", "webhooks", "checkout"):
        metrics = importlib.import_module(f"{app}.metrics")
        exported |= {m._name for m in vars(metrics).values() if hasattr(m, "_name") and hasattr(m, "_type")}
    exported |= {f"{name}_total" for name in exported}
    recorded = {
        rule["record"]
        for path in RULE_FILES
        for g in yaml.safe_load(path.read_text())["groups"]
        for rule in g["rules"]
        if "record" in rule
    }
    known = exported | recorded | EXTERNAL_SERIES
    for expr in _all_queries() + _rule_exprs():
        unquoted = re.sub(r'"[^"]*"', '""', expr)  # label values are not series
        for name in re.findall(r"\b(?:up|paygate[a-z0-9_:]*)\b", unquoted):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert name in known or base in known, f"{name} in {expr!r} is neither exported nor recorded"


def test_compose_monitoring_profile_mounts_files_that_exist(tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = {name for name, service in compose["services"].items() if "monitoring" in service.get("profiles", [])}
    assert services == {"prometheus", "alertmanager", "grafana"}
    for name in services:
        for volume in compose["services"][name].get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    assert compose["secrets"]["paygate_metrics_token"] == {"environment": "PAYGATE_METRICS_TOKEN"}


def test_promtool_checks_the_compose_prometheus_configuration(tmp_path: Path) -> None:
    """ops/prometheus/prometheus.yml with its in-container paths pointed at the repository's files."""
    promtool = require_tool("promtool")
    config = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(ROOT / "ops" / "prometheus" / Path(path).name) for path in config["rule_files"]]
    token = tmp_path / "token"
    token.write_text("t")
    [job] = config["scrape_configs"]
    assert job["job_name"] == "paygate"
    job["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    assert "SUCCESS" in run_tool([promtool, "check", "config", path]).stdout


@pytest.mark.parametrize(
    ("password", "starts"), [("", False), ("admin", False), ("a-long-chosen-one", True)], ids=["unset", "admin", "set"]
)
def test_compose_grafana_refuses_to_start_without_a_chosen_admin_password(password: str, starts: bool) -> None:
    """The entrypoint's guard, run by a real shell with compose's `$$` unescaped."""
    import subprocess

    grafana = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    shell, flag, script = grafana["entrypoint"]
    script = script.replace("$$", "$").replace("exec /run.sh", "exit 0")

    result = subprocess.run([shell, flag, script], env={"GF_SECURITY_ADMIN_PASSWORD": password}, capture_output=True)

    assert (result.returncode == 0) == starts, result.stderr
