"""The Prometheus rules and the Alertmanager configuration, checked and unit-tested by the real tools."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from testing.monitoring import (
    ALERTMANAGER_CONFIG,
    RULE_FILES,
    RULE_TESTS,
    RUNBOOK,
    require_tool,
    run_tool,
)


def _rules() -> list[dict[str, Any]]:
    return [
        rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
    ]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _runbook_anchors() -> set[str]:
    """The anchors a Markdown renderer gives the runbook's headings (lower case, punctuation dropped)."""
    anchors = set()
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_promtool_checks_the_rules() -> None:
    promtool = require_tool("promtool")
    output = run_tool([promtool, "check", "rules", *RULE_FILES]).stdout
    assert output.count("SUCCESS") == len(RULE_FILES), output


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    promtool = require_tool("promtool")
    assert "SUCCESS" in run_tool([promtool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent).stdout


def test_amtool_checks_the_alertmanager_configuration() -> None:
    amtool = require_tool("amtool")
    assert "SUCCESS" in run_tool([amtool, "check-config", ALERTMANAGER_CONFIG]).stdout


def test_the_unit_tests_cover_every_alert_firing_and_not_firing() -> None:
    cases = [
        case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test.get("alert_rule_test", [])
    ]
    for alert in _alerts():
        name = alert["alert"]
        expectations = [bool(case.get("exp_alerts")) for case in cases if case["alertname"] == name]
        assert True in expectations, f"{name}: no unit test where it fires"
        assert False in expectations, f"{name}: no unit test where it stays quiet"


@pytest.mark.parametrize("alert", _alerts(), ids=lambda alert: alert["alert"])
def test_every_alert_has_a_severity_and_a_runbook_section(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in {"critical", "warning"}
    assert alert["annotations"]["summary"]
    page, _, anchor = alert["annotations"]["runbook_url"].partition("#")
    assert page == "docs/runbook.md"
    assert anchor in _runbook_anchors(), f"docs/runbook.md has no section #{anchor}"


def test_recording_rules_follow_the_naming_convention() -> None:
    """level:metric:operations (Prometheus' convention), so a dashboard can tell them from raw series."""
    for rule in _rules():
        if "record" in rule:
            assert re.fullmatch(r"paygate:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
