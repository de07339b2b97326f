"""Paygate's Grafana dashboards, as code: `python -m ops.grafana.generate` (or `make dashboards`).

Writes `ops/grafana/dashboards/*.json`, which Grafana loads through the provisioning files
beside them (docker-compose's `monitoring` profile). Edit this file, not the JSON: a test
regenerates the dashboards and fails when the committed files differ, and checks every
panel query with `promtool`. The queries use the series of `/metrics` and the recording
rules of `ops/prometheus/recording.rules.yml`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    GridPos,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")  # provisioning/datasources/prometheus.yml
TAGS = ["paygate"]
WIDTH = 24


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""
    kind: str = "timeseries"  # or "stat"
    width: int = 12
    height: int = 8
    max: float | None = None


def ts(title: str, *queries: Query, unit: str = "short", description: str = "", max: float | None = None) -> Panel:
    return Panel(title=title, queries=queries, unit=unit, description=description, max=max)


def single(title: str, query: Query, *, unit: str = "short", description: str = "") -> Panel:
    return Panel(title=title, queries=(query,), unit=unit, description=description, kind="stat", width=6, height=4)


def _layout(panels: list[Panel]) -> Iterator[tuple[Panel, GridPos]]:
    """Left to right, top to bottom, each row as high as its highest panel."""
    x = y = row_height = 0
    for panel in panels:
        if x + panel.width > WIDTH:
            x, y, row_height = 0, y + row_height, 0
        yield panel, GridPos(h=panel.height, w=panel.width, x=x, y=y)
        x += panel.width
        row_height = max(row_height, panel.height)


def _targets(panel: Panel) -> list[prometheus.Dataquery]:
    return [
        prometheus.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend or "__auto")
        .ref_id(chr(ord("A") + index))
        .datasource(DATASOURCE)
        for index, query in enumerate(panel.queries)
    ]


def _panel(panel: Panel, position: GridPos, panel_id: int) -> Any:
    built: Any
    if panel.kind == "stat":
        built = (
            stat.Panel()
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .color_mode(common.BigValueColorMode.VALUE)
            .graph_mode(common.BigValueGraphMode.AREA)
        )
    else:
        built = (
            timeseries.Panel()
            .line_width(1)
            .fill_opacity(10)
            .legend(
                common_builders.VizLegendOptions()
                .display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
        )
        if panel.max is not None:
            built = built.min(0).max(panel.max)
    built = built.id(panel_id).title(panel.title).unit(panel.unit).datasource(DATASOURCE).grid_pos(position)
    if panel.description:
        built = built.description(panel.description)
    for target in _targets(panel):
        built = built.with_target(target)
    return built


def _variable(name: str, label: str, query: str, *, multi: bool) -> dashboard.QueryVariable:
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DATASOURCE)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    if multi:
        variable = variable.all_value(".+").current(VariableOption(text="All", value="$__all", selected=True))
    return variable


def _dashboard(uid: str, title: str, description: str, panels: list[Panel], variables: list[Any]) -> dict[str, Any]:
    built = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .editable()
    )
    for variable in variables:
        built = built.with_variable(variable)
    for panel_id, (panel, position) in enumerate(_layout(panels), start=1):
        built = built.with_panel(_panel(panel, position, panel_id))
    encoded: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(built.build()))
    return encoded


GATEWAY = 'gateway=~"$gateway"'


def gateway_overview() -> dict[str, Any]:
    panels = [
        single(
            "Countries without a gateway",
            Query("count(paygate_country_available_routes == 0) or vector(0)"),
            description="Country and type pairs whose every route has an unhealthy gateway or an open breaker.",
        ),
        single("Unhealthy gateways", Query("count(paygate_gateway_healthy == 0) or vector(0)")),
        single("Breakers not closed", Query("count(paygate_gateway_breaker_open > 0) or vector(0)")),
        single(
            "Oldest pending transaction",
            Query('max(paygate_oldest_transaction_age_seconds{status="pending"})'),
            unit="s",
        ),
        ts(
            "Success rate, 15 min (completed per payment call)",
            Query(f"paygate:gateway_success_ratio:rate15m{{{GATEWAY}}}", "{{gateway}} {{country}}"),
            unit="percentunit",
            max=1,
            description="A decline, a failed callback and a technical fault all count as failures (CONTRACT §10).",
        ),
        ts(
            "Answered share of payment calls, 5 min",
            Query(f"paygate:gateway_answered_ratio:rate5m{{{GATEWAY}}}", "{{gateway}} {{country}}"),
            unit="percentunit",
            max=1,
            description="Accepted or declined, against technical faults (not submitted, unknown outcome).",
        ),
        ts(
            "Payment calls by outcome",
            Query(
                f"sum by (gateway, outcome) (paygate:gateway_payments:rate5m{{{GATEWAY}}})", "{{gateway}} {{outcome}}"
            ),
            unit="reqps",
        ),
        ts(
            "Payment call latency p95",
            Query(
                "histogram_quantile(0.95, sum by (gateway, le) "
                f"(rate(paygate_gateway_payment_seconds_bucket{{{GATEWAY}}}[$__rate_interval])))",
                "{{gateway}}",
            ),
            unit="s",
        ),
        ts(
            "Circuit breaker (0 closed, 0.5 half-open, 1 open)",
            Query(f"paygate_gateway_breaker_open{{{GATEWAY}}}", "{{gateway}}"),
            max=1,
        ),
        ts(
            "Health checks passing",
            Query(f"min by (gateway) (paygate_gateway_healthy{{{GATEWAY}}})", "{{gateway}}"),
            max=1,
        ),
        ts(
            "Callbacks by result",
            Query(
                f"sum by (gateway, result) (rate(paygate_callbacks_total{{{GATEWAY}}}[$__rate_interval]))",
                "{{gateway}} {{result}}",
            ),
            unit="reqps",
        ),
        ts(
            "Transactions finished by status",
            Query(
                f"sum by (gateway, status) (rate(paygate_transactions_finished_total{{{GATEWAY}}}[$__rate_interval]))"
            ),
            unit="reqps",
        ),
        ts(
            "Customer actions: the funnel",
            Query(
                f"sum by (gateway, stage) (rate(paygate_customer_actions_total{{{GATEWAY}}}[$__rate_interval]))",
                "{{gateway}} {{stage}}",
            ),
            unit="reqps",
            description="Presented (the gateway asked the customer to act), forwarded (the pay page sent the "
            "customer on or showed the code), returned (back from the gateway), then completed, cancelled, "
            "expired or failed (CONTRACT §11).",
        ),
        ts(
            "Customer actions completed, 1 h (against the last day)",
            Query(f"paygate:customer_action_completion_ratio:rate1h{{{GATEWAY}}}", "{{gateway}} {{country}}"),
            Query(f"paygate:customer_action_completion_ratio:rate1d{{{GATEWAY}}}", "{{gateway}} {{country}} 1 d"),
            unit="percentunit",
            max=1,
            description="Share of presented actions that completed. Alert PaygateCustomerActionCompletionDropped "
            "fires below 3/4 of the gateway's last day.",
        ),
    ]
    variables = [_variable("gateway", "Gateway", "label_values(paygate_gateway_breaker_open, gateway)", multi=True)]
    return _dashboard(
        "paygate-gateways",
        "Paygate / Gateway overview",
        "Per gateway: success rate, answered share, outcomes, latency, breaker, health and callbacks.",
        panels,
        variables,
    )


COUNTRY = 'country="$country"'


def country_routing() -> dict[str, Any]:
    panels = [
        single(
            "Routes available now",
            Query(f"paygate_country_available_routes{{{COUNTRY}}}", "{{type}}"),
            description="Routes whose gateway is healthy and whose breaker is not open.",
        ),
        single("Routes configured", Query(f"paygate_country_routes{{{COUNTRY}}}", "{{type}}")),
        single(
            "Created, last hour",
            Query(f"sum by (type) (increase(paygate_transactions_created_total{{{COUNTRY}}}[1h]))", "{{type}}"),
        ),
        single(
            "Completed share, last hour",
            Query(
                f'sum(increase(paygate_transactions_finished_total{{{COUNTRY}, status="completed"}}[1h]))'
                f" / sum(increase(paygate_transactions_finished_total{{{COUNTRY}}}[1h]))"
            ),
            unit="percentunit",
        ),
        ts(
            "Success rate per gateway: 15 min against its last day",
            Query(f"paygate:gateway_success_ratio:rate15m{{{COUNTRY}}}", "{{gateway}} 15 min"),
            Query(f"paygate:gateway_success_ratio:rate1d{{{COUNTRY}}}", "{{gateway}} 1 day"),
            unit="percentunit",
            max=1,
        ),
        ts(
            "Payment calls by gateway and outcome",
            Query(
                f"sum by (gateway, outcome) (paygate:gateway_payments:rate5m{{{COUNTRY}}})", "{{gateway}} {{outcome}}"
            ),
            unit="reqps",
        ),
        ts(
            "Payment call latency p95",
            Query(f"paygate:gateway_payment_seconds:p95_5m{{{COUNTRY}}}", "{{gateway}}"),
            unit="s",
        ),
        ts(
            "Transactions created",
            Query(
                f"sum by (type) (rate(paygate_transactions_created_total{{{COUNTRY}}}[$__rate_interval]))", "{{type}}"
            ),
            unit="reqps",
        ),
        ts(
            "Transactions finished by status and reason",
            Query(
                f"sum by (status, failure_reason) (paygate:transactions_finished:rate5m{{{COUNTRY}}})",
                "{{status}} {{failure_reason}}",
            ),
            unit="reqps",
        ),
    ]
    variables = [_variable("country", "Country", "label_values(paygate_country_routes, country)", multi=False)]
    return _dashboard(
        "paygate-country",
        "Paygate / Country routing",
        "One country: its routes, how each gateway performs there against its own last day,"
        " what became of its transactions.",
        panels,
        variables,
    )


def pipeline_queues() -> dict[str, Any]:
    panels = [
        single("Tasks queued", Query("sum(paygate_celery_queue_length)")),
        single("Pending transactions", Query('sum(paygate_transactions_waiting{status="pending"})')),
        single("Unapplied callbacks", Query("sum(paygate_callbacks_unapplied)")),
        single("Open refunds", Query('sum(paygate_refunds{status=~"pending|processing"})')),
        ts("Queue length", Query("paygate_celery_queue_length", "{{queue}}")),
        ts(
            "Task wait before a worker starts it (p50, p95)",
            Query(
                "histogram_quantile(0.5, sum by (queue, le) "
                "(rate(paygate_celery_task_wait_seconds_bucket[$__rate_interval])))",
                "{{queue}} p50",
            ),
            Query("paygate:celery_task_wait_seconds:p95_5m", "{{queue}} p95"),
            unit="s",
        ),
        ts(
            "Task wait p95 by task",
            Query(
                "histogram_quantile(0.95, sum by (task, le) "
                "(rate(paygate_celery_task_wait_seconds_bucket[$__rate_interval])))",
                "{{task}}",
            ),
            unit="s",
        ),
        ts(
            "Since a worker last started a task from the queue",
            Query("time() - paygate_celery_queue_last_consumed_timestamp_seconds", "{{queue}}"),
            unit="s",
        ),
        ts(
            "Periodic tasks: since the last success, against their interval",
            Query("time() - paygate_periodic_task_last_success_timestamp_seconds", "{{task}}"),
            Query("paygate_periodic_task_interval_seconds", "{{task}} interval"),
            unit="s",
        ),
        ts("Transactions waiting", Query("paygate_transactions_waiting", "{{status}}")),
        ts("Oldest waiting transaction", Query("paygate_oldest_transaction_age_seconds", "{{status}}"), unit="s"),
        ts(
            "Callbacks not applied yet",
            Query("paygate_callbacks_unapplied", "count"),
            Query("paygate_callback_oldest_unapplied_age_seconds", "oldest (s)"),
        ),
        ts("Refunds by status", Query("paygate_refunds", "{{status}}")),
        ts("Oldest open refund", Query("paygate_refund_oldest_open_age_seconds", "age"), unit="s"),
    ]
    return _dashboard(
        "paygate-pipeline",
        "Paygate / Pipeline queues",
        "Celery queues and task waits, the periodic sweeps, and what waits in the database.",
        panels,
        [],
    )


def webhooks() -> dict[str, Any]:
    panels = [
        single("Endpoints failing", Query("sum(paygate_webhook_endpoints_failing)")),
        single("Oldest undelivered event", Query("max(paygate_webhook_oldest_undelivered_age_seconds)"), unit="s"),
        single(
            "Given up, last day",
            Query('sum(increase(paygate_webhook_deliveries_total{result="failed"}[1d]))'),
        ),
        single(
            "Attempts failing, 15 min",
            Query(
                'sum(rate(paygate_webhook_deliveries_total{result=~"failed|retry"}[15m]))'
                " / sum(rate(paygate_webhook_deliveries_total[15m]))"
            ),
            unit="percentunit",
        ),
        ts("Delivery attempts by result", Query("paygate:webhook_deliveries:rate5m", "{{result}}"), unit="reqps"),
        ts("Endpoints whose last attempt failed", Query("paygate_webhook_endpoints_failing", "endpoints")),
        ts("Oldest undelivered event", Query("paygate_webhook_oldest_undelivered_age_seconds", "age"), unit="s"),
    ]
    return _dashboard(
        "paygate-webhooks",
        "Paygate / Webhooks",
        "Deliveries of events to merchants' webhook endpoints.",
        panels,
        [],
    )


def dashboards() -> dict[str, dict[str, Any]]:
    """File name → dashboard JSON."""
    return {
        "gateway-overview.json": gateway_overview(),
        "country-routing.json": country_routing(),
        "pipeline-queues.json": pipeline_queues(),
        "webhooks.json": webhooks(),
    }


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def panel_queries(board: dict[str, Any]) -> Iterator[str]:
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the committed files are current")
    args = parser.parse_args(argv)
    stale = []
    for name, board in dashboards().items():
        path = DASHBOARDS_DIR / name
        text = render(board)
        if not path.exists() or path.read_text() != text:
            stale.append(name)
            if not args.check:
                DASHBOARDS_DIR.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    verb = "out of date" if args.check else "written"
    print(f"{verb}: {', '.join(stale)}" if stale else "dashboards are up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
