"""A real Prometheus, with the shipped rules, scraping a running stack: a gateway goes down, an alert fires.

The rules are `ops/prometheus/*.rules.yml` as shipped except for their `for:` durations,
shortened to a second, and Prometheus scrapes and evaluates every second, so that the
alert's whole life (inactive, pending, firing) fits in a few seconds.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import harness
from harness.monitoring import prometheus_argv, prometheus_config
from testing.monitoring import RULE_FILES, require_tool
from testing.stack import Process, Sandbox, wait_for

TOKEN = "prometheus-scrape-token"


def shortened_rules(folder: Path) -> list[Path]:
    """Copies of the rule files whose every `for:` lasts one second."""
    paths = []
    for path in RULE_FILES:
        rules = yaml.safe_load(path.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = "1s"
        copy = folder / path.name
        copy.write_text(yaml.safe_dump(rules, sort_keys=False))
        paths.append(copy)
    return paths


class PrometheusApi:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"

    def get(self, path: str, **params: str) -> Any:
        status, body = harness.http_get(f"{self.base}/{path}?{urllib.parse.urlencode(params)}")
        assert status == 200, (status, body[:500])
        return json.loads(body)["data"]

    def value(self, query: str) -> float | None:
        result = self.get("query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [alert for alert in self.get("alerts")["alerts"] if alert["labels"]["alertname"] == name]


@pytest.fixture
def prometheus(live_server: Any, settings: Any, tmp_path: Path) -> Iterator[PrometheusApi]:
    binary = require_tool("prometheus")
    settings.PAYGATE_METRICS_TOKEN = TOKEN  # /metrics of the live server now asks for it
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        prometheus_config(
            target=urllib.parse.urlsplit(live_server.url).netloc,
            rules=shortened_rules(tmp_path),
            token_file=token_file,
            scrape_interval="1s",
            evaluation_interval="1s",
        )
    )
    port = harness.free_port()
    argv = prometheus_argv(config=config, data_dir=tmp_path / "data", port=port)
    assert argv[0] == binary
    process = Process("prometheus", argv, {})
    process.start()
    try:
        harness.wait_for(
            lambda: harness.http_get(f"http://127.0.0.1:{port}/-/ready")[0] == 200,
            timeout=60,
            what="prometheus to be ready",
            alive=process.check_alive,
        )
        yield PrometheusApi(port)
    finally:
        process.stop(timeout=10)


@pytest.mark.integration
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_country_whose_only_gateway_goes_down_fires_an_alert(
    stack: dict[str, Sandbox], prometheus: PrometheusApi
) -> None:
    from gateways.models import Gateway
    from gateways.tasks import check_health_all

    br = 'paygate_country_available_routes{country="BR", type="deposit"}'
    # Scraped with the bearer token, and BR (soapbank only) can be served.
    wait_for(lambda: prometheus.value(br) == 1, timeout=30, message="Prometheus to scrape BR's routes")
    assert prometheus.value('up{job="paygate"}') == 1
    assert prometheus.alerts("PaygateCountryWithoutGateway") == []

    stack["soapbank"].mode("down")
    try:
        # The worker runs the health checks, as beat would have it do.
        wait_for(
            lambda: check_health_all.delay() and Gateway.objects.get(code="soapbank").health_status == "unhealthy",
            timeout=30,
            interval=0.5,
            message="soapbank to be found unhealthy",
        )

        def firing() -> list[dict[str, Any]]:
            return [
                a
                for a in prometheus.alerts("PaygateCountryWithoutGateway")
                if a["labels"]["country"] == "BR" and a["state"] == "firing"
            ]

        alerts = wait_for(
            lambda: len(found := firing()) == 2 and found,
            timeout=30,
            interval=0.2,
            message="PaygateCountryWithoutGateway to fire for BR's deposits and withdrawals",
        )
    finally:
        stack["soapbank"].mode("ok")

    assert {a["labels"]["type"] for a in alerts} == {"deposit", "withdrawal"}
    assert all(a["labels"]["severity"] == "critical" for a in alerts)
    assert alerts[0]["annotations"]["runbook_url"] == "docs/runbook.md#paygatecountrywithoutgateway"
    # DE and GB fail over to another gateway: no alert for them.
    countries = {a["labels"]["country"] for a in prometheus.alerts("PaygateCountryWithoutGateway")}
    assert countries == {"BR"}
    assert prometheus.value(br) == 0
    assert prometheus.value('paygate_gateway_healthy{gateway="soapbank"}') == 0
