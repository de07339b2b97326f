"""Turning a bench run into bench/results/: JSON, a Markdown summary and PNG charts."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The targets (2 cores shared by the load generator and the stack), each against the floor of the
# same shape measured in the same run: never test assertions.
TARGET_E2E_RATIO = 0.55  # finished/s, at least this share of the floor's
TARGET_CPU_RATIO = 1.8  # CPU ms per transaction, at most this many times the floor's
TARGET_PG_CPU_RATIO = 3.0  # PostgreSQL CPU ms per transaction, at most this many times the floor's
TARGET_OVERHEAD_P50_MS = 10.0
KINDS = ("web", "worker", "webhooks", "beat", "postgres", "sandbox")


def ratio(value: float | None, floor: float | None, digits: int = 3) -> float | None:
    return None if value is None or not floor else round(value / floor, digits)


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _figure(paygate: Any, floor: Any, *, at_least: float | None = None, at_most: float | None = None) -> dict[str, Any]:
    r = ratio(paygate, floor)
    out: dict[str, Any] = {"paygate": paygate, "floor": floor, "ratio": r}
    if at_least is not None:
        out.update(target_ratio_min=at_least, met=_ge(r, at_least))
    if at_most is not None:
        out.update(target_ratio_max=at_most, met=None if r is None else r <= at_most)
    return out


def summarize(main: dict[str, Any]) -> dict[str, Any]:
    """The headline figures, each with the floor's and the ratio to it."""
    paygate_cost = _get(main, "mixed", "cost") or {}
    floor_cost = _get(main, "floor", "e2e", "cost") or {}
    p_cpu, f_cpu = paygate_cost.get("cpu") or {}, floor_cost.get("cpu") or {}
    p_kinds, f_kinds = p_cpu.get("by_kind_ms") or {}, f_cpu.get("by_kind_ms") or {}
    p_pg, f_pg = paygate_cost.get("pg_stat_database") or {}, floor_cost.get("pg_stat_database") or {}
    statements = main.get("statements") or {}
    overhead_low = _get(main, "low_load", "e2e", "overhead_ms", "p50")
    correctness = main.get("correctness", {})
    return {
        "e2e_finished_per_s": _figure(
            _get(main, "mixed", "e2e", "finished_per_s"),
            _get(main, "floor", "e2e", "e2e", "finished_per_s"),
            at_least=TARGET_E2E_RATIO,
        ),
        "cpu_ms_per_transaction": _figure(p_cpu.get("total_ms"), f_cpu.get("total_ms"), at_most=TARGET_CPU_RATIO),
        "cpu_ms_per_transaction_by_kind": {
            kind: _figure(p_kinds.get(kind), f_kinds.get(kind)) for kind in KINDS if kind in p_kinds or kind in f_kinds
        },
        "postgres_cpu_ms_per_transaction": _figure(
            p_kinds.get("postgres"), f_kinds.get("postgres"), at_most=TARGET_PG_CPU_RATIO
        ),
        "postgres_statements_per_transaction": {
            "method": statements.get("method"),
            **_figure(
                _get(statements, "paygate", "statements_per_transaction"),
                _get(statements, "floor", "statements_per_transaction"),
            ),
        },
        "postgres_transactions_per_transaction": _figure(p_pg.get("xact_commit"), f_pg.get("xact_commit")),
        "api_accepted_per_s_workers_stopped": _figure(
            _get(main, "api_only", "api", "accepted_per_s"), _get(main, "floor", "api", "accepted_per_s")
        ),
        "accept_to_final_p50_ms_low_load": _figure(
            _get(main, "low_load", "e2e", "accept_to_final_ms", "p50"),
            _get(main, "floor", "low_load", "e2e", "accept_to_final_ms", "p50"),
        ),
        "overhead_p50_ms_low_load": {
            "paygate": overhead_low,
            "target_max": TARGET_OVERHEAD_P50_MS,
            "met": None if overhead_low is None else overhead_low < TARGET_OVERHEAD_P50_MS,
        },
        "webhook_delivery": _delivery_cost(main),
        "correctness": {
            "lost": correctness.get("lost"),
            "sent_to_two_gateways": correctness.get("sent_to_two_gateways"),
            "paid_twice": correctness.get("paid_twice"),
            "met": not (
                correctness.get("lost") or correctness.get("paid_twice") or correctness.get("sent_to_two_gateways")
            ),
        },
    }


def _delivery_cost(main: dict[str, Any]) -> dict[str, Any]:
    """The `webhooks` phase against `mixed`: what one endpoint subscribed to every event adds."""
    without = _get(main, "mixed", "cost", "cpu", "total_ms")
    with_endpoint = _get(main, "webhooks", "cost", "cpu", "total_ms")
    events = _get(main, "webhooks", "deliveries", "events")
    transactions = _get(main, "webhooks", "cost", "cpu", "transactions")
    extra = None if without is None or with_endpoint is None else round(with_endpoint - without, 2)
    until_last = _get(main, "webhooks", "finished_per_s_until_last_delivery")
    floor = _get(main, "floor", "e2e", "e2e", "finished_per_s")
    return {
        "cpu_ms_without": without,
        "cpu_ms_with": with_endpoint,
        "extra_cpu_ms": None if without is None or with_endpoint is None else round(with_endpoint - without, 2),
        "finished_per_s_without": _get(main, "mixed", "e2e", "finished_per_s"),
        "finished_per_s_with": _get(main, "webhooks", "e2e", "finished_per_s"),
        "deliveries_per_transaction": round(events / transactions, 2) if events and transactions else None,
        "extra_cpu_ms_per_delivery": round(extra * transactions / events, 2)
        if extra is not None and events and transactions
        else None,
        "finished_per_s_until_last_delivery": until_last,
        "until_last_delivery_vs_floor": ratio(until_last, floor, 3),
    }


def _ge(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


# --- Markdown -----------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ratio(value: float | None, floor: float | None) -> str:
    r = ratio(value, floor, 3)
    return "–" if r is None else f"{r:.2f}×"


def _met(flag: bool | None) -> str:
    return "–" if flag is None else ("**met**" if flag else "**NOT met**")


def _lat(summary: dict[str, Any] | None) -> str:
    if not summary or summary.get("p50") is None:
        return "–"
    return f"{summary['p50']:.1f} / {summary.get('p95', 0) or 0:.1f} / {summary['p99']:.1f}"


def markdown(results: dict[str, Any]) -> str:
    main = results["main"]
    s = main["summary"]
    cfg = main["config"]
    broker = "RabbitMQ" if cfg.get("broker") == "amqp" else "Redis"
    lines = [
        f"# Paygate benchmark — {results['meta']['timestamp_utc']} UTC",
        "",
        f"Configuration: {main['label']}; N = {cfg['n']} per load phase, {cfg['low_load_n']} in the low-load loop. "
        f"PostgreSQL and {broker} on 127.0.0.1, sandboxes with `--callback-delay 0`, DEBUG=False, "
        f"LOG_LEVEL=WARNING. The load generator (asyncio + aiohttp, one process) shares the "
        f"{results['meta']['machine_before']['cpus']} CPUs with the whole stack. "
        f"Load average before: {results['meta']['machine_before']['loadavg']}, "
        f"after: {_get(results, 'meta', 'machine_after', 'loadavg')}.",
        "",
        *_validity(main),
        "## Summary: Paygate against the floor of the same shape, in the same run",
        "",
        "| figure | Paygate | floor | ratio | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]

    def row(figure: str, paygate: str, floor: str = "–", ratio_text: str = "–", target: str = "") -> str:
        return f"| {figure} | {paygate} | {floor} | {ratio_text} | {target} |"

    def figure_row(label: str, key: str, *, digits: int = 1, target: str = "") -> str:
        f = s[key]
        return row(
            label, _fmt(f["paygate"], digits), _fmt(f["floor"], digits), _ratio(f["paygate"], f["floor"]), target
        )

    c = s["correctness"]
    stmts = s["postgres_statements_per_transaction"]
    lines += [
        figure_row(
            "End to end: finished/s (N at the given concurrency, workers running)",
            "e2e_finished_per_s",
            target=f"≥ {TARGET_E2E_RATIO:.2f}× {_met(s['e2e_finished_per_s'].get('met'))}",
        ),
        figure_row(
            "CPU ms per transaction (web + worker + beat + PostgreSQL + sandbox)",
            "cpu_ms_per_transaction",
            digits=2,
            target=f"≤ {TARGET_CPU_RATIO:.1f}× {_met(s['cpu_ms_per_transaction'].get('met'))}",
        ),
        *(
            row(
                f"— of which {kind}",
                _fmt(f["paygate"], 2),
                _fmt(f["floor"], 2),
                _ratio(f["paygate"], f["floor"]),
                f"≤ {TARGET_PG_CPU_RATIO:.0f}× {_met(s['postgres_cpu_ms_per_transaction'].get('met'))}"
                if kind == "postgres"
                else "",
            )
            for kind, f in s["cpu_ms_per_transaction_by_kind"].items()
        ),
        row(
            f"PostgreSQL statements per transaction ({stmts.get('method') or 'not measured'})",
            _fmt(stmts.get("paygate"), 2),
            _fmt(stmts.get("floor"), 2),
            _ratio(stmts.get("paygate"), stmts.get("floor")),
        ),
        figure_row(
            "PostgreSQL transactions (xact_commit) per transaction (pg_stat_database)",
            "postgres_transactions_per_transaction",
            digits=2,
        ),
        figure_row("API accepted/s, workers stopped", "api_accepted_per_s_workers_stopped"),
        figure_row("Accept→final p50 ms, low load (one at a time)", "accept_to_final_p50_ms_low_load"),
        row(
            "Paygate overhead p50 ms, low load (accept→final − gateway call)",
            _fmt(s["overhead_p50_ms_low_load"]["paygate"]),
            target=f"< {TARGET_OVERHEAD_P50_MS:.0f} ms {_met(s['overhead_p50_ms_low_load']['met'])}",
        ),
        row(
            "With one endpoint subscribed to `transaction.completed`: extra CPU ms per transaction (its delivery)",
            _fmt(s["webhook_delivery"]["extra_cpu_ms"], 2),
            target="reported",
        ),
        row(
            "Lost / sent to two gateways / paid twice",
            f"{c['lost']} / {c['sent_to_two_gateways']} / {c['paid_twice']}",
            f"{_fmt(_get(main, 'floor', 'correctness', 'not_final'))} not final",
            target=f"0 / 0 / 0 {_met(c['met'])}",
        ),
        "",
    ]
    lines += _definitions()
    lines += _cost_section(main)
    lines += _webhooks_section(main)
    lines += _paypage_section(main)
    lines += _latency_section(main)
    lines += _backlog_section(main)
    lines += _breakdown_section(main)
    lines += _micro_section(main.get("micro"))
    lines += _correctness_section(main)
    if results.get("scaling"):
        lines += _scaling_section(results["scaling"])
    lines += _logs_section(main)
    lines += [
        "## Charts",
        "",
        "![throughput](latest-throughput.png)",
        "",
        "![latency](latest-latency.png)",
        "",
    ]
    lines += _phases_section(main)
    return "\n".join(lines)


def _cost_section(main: dict[str, Any]) -> list[str]:
    paygate = _get(main, "mixed", "cost") or {}
    floor = _get(main, "floor", "e2e", "cost") or {}
    if not paygate and not floor:
        return []
    lines = [
        "## Cost per finished transaction (the `mixed` and `floor_e2e` phases)",
        "",
        "CPU ms by process kind (from /proc: utime + stime of each process, its reaped children included, "
        "between the first request and the last transaction final, divided by the transactions finished); "
        "PostgreSQL is the backends serving that side's database.",
        "",
        "| process kind | Paygate ms | floor ms | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    p_kinds = _get(paygate, "cpu", "by_kind_ms") or {}
    f_kinds = _get(floor, "cpu", "by_kind_ms") or {}
    for kind in sorted(set(p_kinds) | set(f_kinds)):
        lines.append(
            f"| {kind} | {_fmt(p_kinds.get(kind), 2)} | {_fmt(f_kinds.get(kind), 2)} | "
            f"{_ratio(p_kinds.get(kind), f_kinds.get(kind))} |"
        )
    p_total, f_total = _get(paygate, "cpu", "total_ms"), _get(floor, "cpu", "total_ms")
    lines.append(f"| **total** | **{_fmt(p_total, 2)}** | **{_fmt(f_total, 2)}** | **{_ratio(p_total, f_total)}** |")
    p_out = _get(paygate, "cpu", "outside_ms") or {}
    f_out = _get(floor, "cpu", "outside_ms") or {}
    for kind in sorted(set(p_out) | set(f_out)):
        lines.append(f"| *{kind} (not in the total)* | {_fmt(p_out.get(kind), 2)} | {_fmt(f_out.get(kind), 2)} | – |")
    lines += [
        "",
        "Broker and PostgreSQL background processes serve the whole machine (other work included), and the "
        "load generator is the bench itself: shown, not added in.",
        "",
        "PostgreSQL's own counters per transaction (`pg_stat_database` of each side's database):",
        "",
        "| counter | Paygate | floor | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    p_pg, f_pg = paygate.get("pg_stat_database") or {}, floor.get("pg_stat_database") or {}
    for name in p_pg or f_pg:
        values = (p_pg.get(name), f_pg.get(name))
        lines.append(f"| {name} | {_fmt(values[0], 2)} | {_fmt(values[1], 2)} | {_ratio(*values)} |")
    statements = main.get("statements") or {}
    if statements:
        lines += ["", f"SQL statements per transaction ({statements.get('method')}):", ""]
        for side in ("paygate", "floor"):
            data = statements.get(side) or {}
            if data:
                lines.append(
                    f"- {side}: {data.get('statements_per_transaction')} "
                    f"({data.get('excluding_transaction_control')} without BEGIN/COMMIT/SAVEPOINT/RELEASE/SET), "
                    f"over {data.get('transactions')} transactions one at a time; by verb: "
                    f"{data.get('by_verb_per_transaction')}"
                )
    lines.append("")
    return lines


def _paypage_section(main: dict[str, Any]) -> list[str]:
    phase = main.get("paypage")
    if not phase:
        return []
    back = phase.get("return_to_merchant_ms") or {}
    lines = [
        "## The pay page (the `paypage` phase, CONTRACT §11)",
        "",
        f"{phase.get('n')} deposits at `{phase.get('sandbox')}` in `redirect` mode with no callback, one customer at a "
        "time: the return endpoint timed from the request to its `303` to the merchant's `return_url`, the gateway "
        f"look-up included: p50 {_fmt(back.get('p50'))} ms, p99 {_fmt(back.get('p99'))} ms "
        f"(max {_fmt(back.get('max'))}; {phase.get('return_outcomes')}).",
        "",
        "| pay page of a transaction | answer | requests/s | p50 ms | p99 ms | statuses |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for key, label, answer in (
        ("rps_final", "final", "303 to the merchant"),
        ("rps_requires_action", "waiting for the customer", "303 to the gateway"),
        ("rps_not_routed", "not yet routed", "200, the waiting page"),
    ):
        item = phase.get(key) or {}
        latency = item.get("latency_ms") or {}
        lines.append(
            f"| {label} | {answer} | {_fmt(item.get('requests_per_s'))} | {_fmt(latency.get('p50'))} | "
            f"{_fmt(latency.get('p99'))} | {item.get('statuses')} |"
        )
    item = phase.get("rps_final") or {}
    lines += ["", f"{item.get('requests')} requests each, {item.get('concurrency')} in flight (keep-alive).", ""]
    return lines


def _webhooks_section(main: dict[str, Any]) -> list[str]:
    phase = main.get("webhooks")
    if not phase:
        return []
    without = _get(main, "mixed", "cost", "cpu", "by_kind_ms") or {}
    with_endpoint = _get(phase, "cost", "cpu", "by_kind_ms") or {}
    deliveries = phase.get("deliveries") or {}
    lines = [
        "## One webhook endpoint subscribed (the `webhooks` phase against `mixed`)",
        "",
        "The same load as `mixed`, with one endpoint subscribed to every event, `*` (a receiver in the "
        "load generator's process, on loopback, answering 200 at once): each status change also writes "
        "its outbox row, which the webhook dispatcher claims, POSTs signed and records, in batches. "
        "The CPU window ends at the last delivery received.",
        "",
        "| process kind | no endpoint, ms per transaction | one endpoint | extra |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind in sorted(set(without) | set(with_endpoint)):
        a, b = without.get(kind), with_endpoint.get(kind)
        extra = None if a is None and b is None else round((b or 0.0) - (a or 0.0), 2)
        lines.append(f"| {kind} | {_fmt(a, 2)} | {_fmt(b, 2)} | {_fmt(extra, 2)} |")
    cost = _delivery_cost(main)
    lines.append(
        f"| **total** | **{_fmt(cost['cpu_ms_without'], 2)}** | **{_fmt(cost['cpu_ms_with'], 2)}** | "
        f"**{_fmt(cost['extra_cpu_ms'], 2)}** |"
    )
    pg_without = _get(main, "mixed", "cost", "pg_stat_database") or {}
    pg_with = _get(phase, "cost", "pg_stat_database") or {}
    lag = deliveries.get("lag_ms")
    lines += [
        "",
        f"- finished/s: {_fmt(cost['finished_per_s_without'])} without, {_fmt(cost['finished_per_s_with'])} with "
        f"the endpoint; PostgreSQL transactions (xact_commit) per transaction: {_fmt(pg_without.get('xact_commit'), 2)}"
        f" → {_fmt(pg_with.get('xact_commit'), 2)}; rows inserted: {_fmt(pg_without.get('tup_inserted'), 2)} → "
        f"{_fmt(pg_with.get('tup_inserted'), 2)}.",
        f"- deliveries: {deliveries.get('delivered')} of {deliveries.get('completed_transactions')} completed "
        f"transactions received, {deliveries.get('not_delivered')} not, {deliveries.get('duplicates')} duplicates, "
        f"{deliveries.get('bad_signatures')} with a bad signature; outbox rows by status: "
        f"{deliveries.get('outbox_rows_by_status')}.",
        f"- lag from the transaction's final commit to the delivery's arrival, p50 / p95 / p99 ms: {_lat(lag)}; "
        f"from each event's commit to its arrival: {_lat(deliveries.get('event_lag_ms'))}.",
        f"- {_fmt(cost['deliveries_per_transaction'], 2)} deliveries per transaction, "
        f"{_fmt(cost['extra_cpu_ms_per_delivery'], 2)} ms of CPU each, all in; "
        f"{deliveries.get('events_delivered')} of {deliveries.get('events')} events delivered, "
        f"{deliveries.get('bad_standard_signatures')} with a bad Standard Webhooks signature; finished/s counted "
        f"until the last delivery arrived: {_fmt(cost['finished_per_s_until_last_delivery'])} "
        f"({cost['until_last_delivery_vs_floor']}× the floor's).",
        "",
    ]
    return lines


def _latency_section(main: dict[str, Any]) -> list[str]:
    def pair(label: str, paygate: dict[str, Any] | None, floor: dict[str, Any] | None) -> str:
        p50s = (_get(paygate or {}, "p50"), _get(floor or {}, "p50"))
        return f"| {label} | {_lat(paygate)} | {_lat(floor)} | {_ratio(*p50s)} |"

    drain = (_get(main, "drain", "finished_per_s"), _get(main, "floor", "drain", "finished_per_s"))
    return [
        "## Latency",
        "",
        "| figure | Paygate | floor | ratio (p50) |",
        "| --- | ---: | ---: | ---: |",
        pair(
            "API latency p50 / p95 / p99 ms, workers stopped",
            _get(main, "api_only", "api", "latency_ms"),
            _get(main, "floor", "api", "latency_ms"),
        ),
        pair(
            "API latency p50 / p95 / p99 ms, workers running",
            _get(main, "mixed", "api", "latency_ms"),
            _get(main, "floor", "e2e", "api", "latency_ms"),
        ),
        pair(
            "Accept→final p50 / p95 / p99 ms, under load",
            _get(main, "mixed", "e2e", "accept_to_final_ms"),
            _get(main, "floor", "e2e", "e2e", "accept_to_final_ms"),
        ),
        pair(
            "Accept→final p50 / p95 / p99 ms, low load",
            _get(main, "low_load", "e2e", "accept_to_final_ms"),
            _get(main, "floor", "low_load", "e2e", "accept_to_final_ms"),
        ),
        f"| Workers alone: a backlog drained, finished/s | {_fmt(drain[0])} | {_fmt(drain[1])} | {_ratio(*drain)} |",
        "",
    ]


def _validity(main: dict[str, Any]) -> list[str]:
    """Warnings about the conditions of the run, when it was disturbed from outside."""
    lines = []
    busy = {
        name: p["other_percent_of_machine"]
        for name, p in (main.get("phases") or {}).items()
        if p.get("other_percent_of_machine", 0) > 15 and p.get("seconds", 0) > 1
    }
    if busy:
        lines.append(
            f"**Shared machine:** other work used this share of the CPUs during these phases: {busy}. "
            "Throughput and latency are then lower than on a dedicated machine, Paygate and floor alike "
            "(ratios are more robust than absolute figures, but only if both sides were disturbed alike)."
        )
    interruptions = main.get("database_interruptions") or []
    if interruptions:
        lines.append(
            f"**PostgreSQL dropped the bench's connection {len(interruptions)} time(s)** during the run "
            f"(restarted by other work on the machine?): {interruptions[0]['error']}"
        )
    return [*lines, ""] if lines else []


def _definitions() -> list[str]:
    return [
        "Definitions:",
        "",
        "- *accepted/s*: 202 answers divided by the wall time from the first request sent to the last "
        "answer, at a fixed number of requests in flight (closed loop).",
        "- *finished/s*: transactions that reached `completed`/`failed`, divided by the time from the first "
        "one's `created_at` to the last one's `finished_at` (both from the database).",
        "- *accept→final*: `finished_at − created_at` of each transaction (`created_at` is set at the INSERT "
        "inside the create request).",
        "- *Paygate overhead*: accept→final minus the sum of the transaction's `payments_attempt.latency_ms` "
        "(the gateway calls as the HTTP client timed them). What is left is Paygate's own time: publish and "
        "queue wait, pick-up, routing and bookkeeping before and after the call, the gateway's callback "
        "reaching the web (the sandbox sends it at once), storing it, and applying it once it is answered. The API "
        "request's own latency is reported beside it; at low load each transaction is waited for before the "
        "next is sent, so no queueing is included.",
        "- *floor*: a bare pipeline of the same shape (bench/floor/), on its own database, under the same "
        "granian and Celery flags: a DRF endpoint that validates the same body with the same serializer, "
        "INSERTs one row (autocommit) and publishes a task after commit; the task does one UPDATE and one "
        "HTTP call to a sandbox gateway (the same server as Paygate's, its own process); the sandbox's "
        "callback hits a bare endpoint that does one UPDATE. No authentication, idempotency, routing, "
        "locks, encryption or events, and only Django's security and common middleware.",
        "- *ratio*: Paygate ÷ floor.",
        "",
    ]


def _backlog_section(main: dict[str, Any]) -> list[str]:
    lines = [
        "## Backlog and extra work (the recovery sweeps republish what waits too long)",
        "",
        "| phase | max Celery queue depth | max transactions not final | max depth − not final | "
        "status look-ups (transactions) | callback events by result |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for phase in ("mixed", "drain"):
        backlog, extra = _get(main, phase, "backlog") or {}, _get(main, phase, "extra_work") or {}
        if not backlog and not extra:
            continue
        lines.append(
            f"| {phase} | {_fmt(backlog.get('max_queue_depth'))} | {_fmt(backlog.get('max_not_final'))} | "
            f"{_fmt(backlog.get('max_queue_depth_over_not_final'))} | "
            f"{_fmt(extra.get('status_lookups'))} ({_fmt(extra.get('transactions_looked_up'))}) | "
            f"{extra.get('callback_events_by_result')} |"
        )
    lines += [
        "",
        "A queue deeper than the number of unfinished transactions means duplicate tasks: "
        "`payments.sweep_due` republishes `pending` transactions whose `next_check_at` (created + "
        "PAYGATE_SWEEP_GRACE_SECONDS) has passed, and looks up `processing` ones after "
        "PAYGATE_LOOKUP_FIRST_DELAY_SECONDS; callback events `ignored` arrived for transactions already "
        "final (e.g. settled by a look-up first).",
        "",
    ]
    return lines


def _breakdown_section(main: dict[str, Any]) -> list[str]:
    lines = [
        "## Where accept→final goes (single-attempt transactions, p50 / p95 / p99 ms)",
        "",
        "| part | low load | under load |",
        "| --- | ---: | ---: |",
    ]
    low = _get(main, "low_load", "e2e", "parts_ms") or {}
    mixed = _get(main, "mixed", "e2e", "parts_ms") or {}
    for name in mixed or low:
        lines.append(f"| {name} | {_lat(low.get(name))} | {_lat(mixed.get(name))} |")
    lines.append(
        f"| overhead (accept→final − gateway) | {_lat(_get(main, 'low_load', 'e2e', 'overhead_ms'))} | "
        f"{_lat(_get(main, 'mixed', 'e2e', 'overhead_ms'))} |"
    )
    lines.append("")
    return lines


def _micro_section(micro: dict[str, Any] | None) -> list[str]:
    if not micro:
        return []
    lines = [
        "## Per-call costs (bench/micro.py, pytest-benchmark; best round / median round, µs)",
        "",
        "| operation | µs per call |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {v['min_us']:.1f} / {v['median_us']:.1f} |" for name, v in micro.items()]
    with_credentials = _get(micro, "gateway_row_load_with_credentials", "min_us")
    without = _get(micro, "gateway_row_load_without_credentials", "min_us")
    if with_credentials is not None and without is not None:
        lines.append(f"| gateway credentials decrypted per row load (derived) | {with_credentials - without:.1f} |")
    return [
        *lines,
        "",
        "- API keys are hashed with SHA-512: one hash per candidate key with the prefix.",
        "- Loading a Gateway row decrypts api_key, callback_secret and previous_callback_secret, wanted or not.",
        "- SQL statements per transaction are asserted by the test suite (`django_assert_max_num_queries` in "
        "payments/tests/test_query_counts.py and callbacks/tests/test_query_counts.py), not measured here.",
        "",
    ]


def _correctness_section(main: dict[str, Any]) -> list[str]:
    c = main.get("correctness") or {}
    keys = (
        "accepted",
        "lost",
        "sent_to_two_gateways",
        "paid_twice",
        "gateway_requests_repeated_same_reference",
        "completed_in_db_but_not_at_gateway",
        "completed_at_gateway_but_not_in_db",
        "gateway_payments_for_unknown_transactions",
        "gateway_payments_by_sandbox",
        "callbacks_flagged",
        "callbacks_unapplied",
        "transactions_needing_review",
    )
    lines = ["## Correctness (every accepted id of every Paygate phase, against the sandboxes' own records)", ""]
    lines += [f"- {key}: {c.get(key)}" for key in keys]
    statuses = {phase: _get(main, phase, "e2e", "statuses") for phase in ("low_load", "mixed")}
    lines += [
        f"- statuses: {statuses}; attempts per transaction (mixed): "
        f"{_get(main, 'mixed', 'e2e', 'attempts_per_transaction')}",
        "",
    ]
    for phase in ("low_load", "mixed", "api_only"):
        errors = _get(main, phase, "api", "not_accepted_by_status")
        if errors:
            samples = _get(main, phase, "api", "not_accepted_samples")
            lines.append(f"- {phase}: requests not accepted: {errors}; e.g. {samples}")
    lines.append("")
    return lines


def _scaling_section(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "## Scaling (same N and concurrency; throughput phases only)",
        "",
        "| web workers | celery processes × concurrency | finished/s | floor finished/s | ratio | "
        "CPU ms/txn | floor CPU ms/txn | API/s workers stopped | floor API/s | drain/s | floor drain/s |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        cfg = row["config"]
        finished = _get(row, "mixed", "e2e", "finished_per_s")
        floor_finished = _get(row, "floor", "e2e", "e2e", "finished_per_s")
        lines.append(
            f"| {cfg['web_workers']} | {cfg['worker_processes']} × {cfg['worker_concurrency']} | {_fmt(finished)} | "
            f"{_fmt(floor_finished)} | {_ratio(finished, floor_finished)} | "
            f"{_fmt(_get(row, 'mixed', 'cost', 'cpu', 'total_ms'), 2)} | "
            f"{_fmt(_get(row, 'floor', 'e2e', 'cost', 'cpu', 'total_ms'), 2)} | "
            f"{_fmt(_get(row, 'api_only', 'api', 'accepted_per_s'))} | "
            f"{_fmt(_get(row, 'floor', 'api', 'accepted_per_s'))} | "
            f"{_fmt(_get(row, 'drain', 'finished_per_s'))} | "
            f"{_fmt(_get(row, 'floor', 'drain', 'finished_per_s'))} |"
        )
    lines.append("")
    return lines


def _phases_section(main: dict[str, Any]) -> list[str]:
    lines = [
        "## Phases: wall time and CPU (the machine is shared: *other* is work that is not this bench)",
        "",
        "| phase | seconds | machine busy % | bench CPU s | PostgreSQL/Redis background CPU s | other CPU s | "
        "other % of machine |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, p in main["phases"].items():
        lines.append(
            f"| {name} | {p['seconds']} | {p['machine_busy_percent']} | {p.get('bench_cpu_s', 0)} | "
            f"{p.get('shared_cpu_s', 0)} | {p.get('other_cpu_s', 0)} | {p['other_percent_of_machine']} |"
        )
    quiet = main.get("machine_quiet_check")
    if quiet:
        lines += ["", f"Quiet check before the run: {quiet}"]
    lines.append("")
    return lines


def _logs_section(main: dict[str, Any]) -> list[str]:
    logs = main.get("logs") or {}
    lines = [f"## Warnings and errors in the process logs ({main.get('log_dir')})", ""]
    if not logs:
        return lines + ["None.", ""]
    for name, data in logs.items():
        lines.append(f"- **{name}**: {data['lines']} line(s), e.g.")
        lines += [f"  - `{sample}`" for sample in data["distinct_samples"][:4]]
    lines.append("")
    return lines


# --- charts ---------------------------------------------------------------------------------------


def _cdf(ax: Any, values: Sequence[float], label: str) -> None:
    if not values:
        return
    ordered = sorted(values)
    n = len(ordered)
    ax.plot(ordered, [(i + 1) / n for i in range(n)], label=f"{label} (n={n})")


def charts(raw: dict[str, Any], results_dir: Path, timestamp: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 11), constrained_layout=True)
    mixed = raw.get("mixed") or {}
    top.step(
        range(len(mixed.get("accepted_per_s", []))),
        mixed.get("accepted_per_s", []),
        where="post",
        label="accepted/s (API answers)",
    )
    top.step(
        range(len(mixed.get("finished_per_s", []))),
        mixed.get("finished_per_s", []),
        where="post",
        label="finished/s (finished_at)",
    )
    floor_e2e = raw.get("floor_e2e") or {}
    top.step(
        range(len(floor_e2e.get("finished_per_s", []))),
        floor_e2e.get("finished_per_s", []),
        where="post",
        label="floor finished/s",
        linestyle=":",
    )
    top.set_title("Paygate under load, workers running")
    top.set_xlabel("seconds since the first request")
    top.set_ylabel("per second")
    top.legend()
    backlog = [s for s in mixed.get("backlog", []) if s[1] >= 0]
    if backlog:
        middle.plot([s[0] for s in backlog], [s[1] for s in backlog], label="Celery queue depth")
        middle.plot([s[0] for s in backlog], [s[2] + s[3] for s in backlog], label="transactions not final")
        middle.plot([s[0] for s in backlog], [s[2] for s in backlog], label="of which pending", linestyle=":")
    middle.set_title("Backlog under load, workers running")
    middle.set_xlabel("seconds since the first request")
    middle.legend()
    drain = raw.get("drain_finished_per_s") or []
    floor_drain = raw.get("floor_drain_finished_per_s") or []
    bottom.set_title("Workers alone: a backlog drained (Paygate's transactions; the floor's)")
    if drain or floor_drain:
        bottom.step(range(len(drain)), drain, where="post", label="Paygate backlog drain finished/s")
        bottom.step(range(len(floor_drain)), floor_drain, where="post", label="floor backlog drain finished/s")
        bottom.set_xlabel("seconds since the phase's start")
        bottom.set_ylabel("per second")
        bottom.legend()
    else:
        # An empty pair of axes reads as "nothing drained": say that the phase did not run.
        bottom.axis("off")
        bottom.text(0.5, 0.5, "not measured in this run (the api_only phase)", ha="center", va="center")
    path = results_dir / f"{timestamp}-throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    _cdf(left, (raw.get("api_only") or {}).get("api_latency_ms", []), "Paygate, workers stopped")
    _cdf(left, mixed.get("api_latency_ms", []), "Paygate, workers running")
    _cdf(left, (raw.get("floor") or {}).get("api_latency_ms", []), "floor")
    left.set_xscale("log")
    left.set_title("API request latency (CDF)")
    left.set_xlabel("ms")
    left.legend()
    _cdf(right, raw.get("low_load_e2e_ms", []), "low load")
    _cdf(right, mixed.get("e2e_ms", []), "under load")
    _cdf(right, (raw.get("floor_e2e") or {}).get("e2e_ms", []), "floor, under load")
    right.set_xscale("log")
    right.set_title("Accept → final latency (CDF)")
    right.set_xlabel("ms")
    right.legend()
    path = results_dir / f"{timestamp}-latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths


# --- writing ---------------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write(results: dict[str, Any], raws: dict[str, Any], *, results_dir: Path, timestamp: str) -> list[Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    results["main"]["summary"] = summarize(results["main"])
    paths: list[Path] = []
    text = json.dumps(results, indent=2, default=str).encode()
    for name in (f"{timestamp}.json", "latest.json"):
        _atomic_write(results_dir / name, text)
        paths.append(results_dir / name)
    raw_dir = results_dir / "raw"
    raw_dir.mkdir(exist_ok=True)
    _atomic_write(raw_dir / f"{timestamp}.json.gz", gzip.compress(json.dumps(raws, default=str).encode()))
    paths.append(raw_dir / f"{timestamp}.json.gz")
    for chart in charts(raws.get("main", {}), results_dir, timestamp):
        latest = results_dir / chart.name.replace(timestamp, "latest")
        shutil.copyfile(chart, latest)
        paths += [chart, latest]
    _atomic_write(results_dir / f"{timestamp}.md", markdown(results).encode())
    shutil.copyfile(results_dir / f"{timestamp}.md", results_dir / "latest.md")
    paths += [results_dir / f"{timestamp}.md", results_dir / "latest.md"]
    return paths
