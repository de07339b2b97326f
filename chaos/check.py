"""The chaos run's checker: Paygate's database against what the clients were told and what the gateways did.

Like a Jepsen checker it reads the history (every request the clients sent and the answer they
got), Paygate's own state (PostgreSQL, read directly with psycopg) and the gateways' records
(`GET /_sandbox/payments` of each sandbox), and reports anomalies:

- lost: an id the API answered 202 for is not in the database;
- idempotency: one Idempotency-Key answered with two ids, or stored under another id;
- double_paid: a transaction with more than one gateway payment that was accepted or completed
  (on one gateway or several);
- completed_unmatched: a `completed` transaction without a completed sandbox payment on its
  gateway whose reference is one of its attempts;
- paid_but_failed: a transaction Paygate calls `failed` (not `expired`) although a gateway
  completed one of its attempts;
- callback_acked_not_stored: a gateway got a 2xx for a callback Paygate has no record of;
- callback_applied_twice: two events applied to one transaction (the unique (gateway, event_id)
  makes one event applying twice impossible; it is checked anyway);
- waiting: transactions that are not final, each with why (explained, or overdue = stuck).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chaos.stack import PSYCOPG_DSN, SANDBOXES, WEB_URL, http_get, sandbox_url
from harness.commands import METRICS_TOKEN

PAID_STATUSES = {"accepted", "completed"}
# How many examples of each anomaly the report keeps.
EXAMPLES = 25


@dataclass
class Snapshot:
    now: datetime
    transactions: dict[str, dict[str, Any]]
    attempts: dict[str, list[dict[str, Any]]]  # transaction id -> attempts by number
    events: list[dict[str, Any]]
    duplicate_event_keys: list[tuple[str, str, int]]
    payments: dict[str, list[dict[str, Any]]]  # gateway code -> sandbox payments
    metrics_text: str = ""
    errors: list[str] = field(default_factory=list)


def read_database() -> tuple[
    datetime,
    dict[str, dict[str, Any]],
    dict[str, list[dict[str, Any]]],
    list[dict[str, Any]],
    list[tuple[str, str, int]],
]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(PSYCOPG_DSN, row_factory=dict_row, connect_timeout=5) as conn:
        now = conn.execute("SELECT now() AS now").fetchone()["now"]
        transactions = {
            str(row["id"]): row
            for row in conn.execute(
                """SELECT t.id, t.type, t.status, t.failure_reason, g.code AS gateway, t.gateway_reference,
                          t.next_check_at, t.created_at, t.updated_at, t.finished_at, t.idempotency_key,
                          t.route_round, t.lookup_count, t.needs_review, t.country_id AS country
                     FROM payments_transaction t LEFT JOIN gateways_gateway g ON g.id = t.gateway_id"""
            )
        }
        attempts: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in conn.execute(
            """SELECT a.id, a.transaction_id, a.number, a.route_round, g.code AS gateway, a.outcome, a.error,
                      a.gateway_payment_id, a.http_status, a.created_at
                 FROM payments_attempt a JOIN gateways_gateway g ON g.id = a.gateway_id
                ORDER BY a.transaction_id, a.number"""
        ):
            row["id"] = str(row["id"])
            attempts[str(row["transaction_id"])].append(row)
        events = [
            {**row, "transaction_id": str(row["transaction_id"]) if row["transaction_id"] else None}
            for row in conn.execute(
                """SELECT e.id, g.code AS gateway, e.event_id, e.reference, e.status, e.result, e.flagged,
                          e.flag_reason, e.transaction_id, e.attempt_id, e.received_at, e.processed_at
                     FROM callbacks_callbackevent e JOIN gateways_gateway g ON g.id = e.gateway_id"""
            )
        ]
        duplicates = [
            (row["code"], row["event_id"], row["n"])
            for row in conn.execute(
                """SELECT g.code, e.event_id, count(*) AS n FROM callbacks_callbackevent e
                     JOIN gateways_gateway g ON g.id = e.gateway_id
                    GROUP BY g.code, e.event_id HAVING count(*) > 1"""
            )
        ]
    return now, transactions, dict(attempts), events, duplicates


def read_sandboxes() -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    import json

    payments: dict[str, list[dict[str, Any]]] = {}
    errors = []
    for code in SANDBOXES:
        status, body = http_get(f"{sandbox_url(code)}/_sandbox/payments", timeout=10)
        if status != 200:
            errors.append(f"sandbox {code}: GET /_sandbox/payments answered {status}")
            payments[code] = []
            continue
        payments[code] = json.loads(body)["payments"]
    return payments, errors


def snapshot() -> Snapshot:
    now, transactions, attempts, events, duplicates = read_database()
    payments, errors = read_sandboxes()
    status, body = http_get(f"{WEB_URL}/metrics", timeout=10, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    metrics_text = body.decode(errors="replace") if status == 200 else ""
    if status != 200:
        errors.append(f"GET /metrics answered {status}")
    return Snapshot(now, transactions, attempts, events, duplicates, payments, metrics_text, errors)


_METRIC_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")


def metric_sum(text: str, name: str, **labels: str) -> float | None:
    """Sum of a Prometheus metric's samples whose labels include `labels`; None if absent."""
    total = None
    for line in text.splitlines():
        match = _METRIC_LINE.match(line.strip())
        if not match or match["name"] != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"]))
        if all(found.get(key) == value for key, value in labels.items()):
            total = (total or 0.0) + float(match["value"])
    return total


def waiting_reason(txn: Mapping[str, Any], attempts: list[dict[str, Any]], now: datetime) -> tuple[str, bool]:
    """Why a transaction is not final, and whether that is explained (False: overdue, i.e. stuck)."""
    status = txn["status"]
    due = txn["next_check_at"]
    last = attempts[-1] if attempts else None
    if due is None:
        return f"{status}: no next check scheduled", False
    in_s = (due - now).total_seconds()
    if status == "pending":
        if last is not None and last["outcome"] == "pending" and in_s > 0:
            return "pending: gateway call in flight", True
        if in_s > 0:
            return "pending: retry of routes scheduled", True
        return "pending: overdue (no sweep or task picked it up)", False
    if status == "processing":
        if in_s > 0:
            return "processing: awaiting callback or status look-up", True
        return "processing: look-up overdue", False
    return f"{status}: unexpected", False


def check(history: list[dict[str, Any]], snap: Snapshot) -> dict[str, Any]:
    """All the checks; a JSON-serialisable report."""
    txns, attempts, events, payments = snap.transactions, snap.attempts, snap.events, snap.payments

    # --- what the clients were told -------------------------------------------------------------
    accepted = [req for req in history if req.get("status") == 202]
    accepted_ids = {req["id"] for req in accepted}
    rejected = Counter(str(req["status"]) for req in history if req.get("status") not in (None, 202))
    gave_up = [req for req in history if req.get("status") is None]
    lost = sorted(accepted_ids - set(txns))
    idempotency = []
    by_key = {txn["idempotency_key"]: txn_id for txn_id, txn in txns.items() if txn["idempotency_key"]}
    for req in history:
        ids = set(req.get("ids") or [])
        if len(ids) > 1:
            idempotency.append({"key": req["key"], "problem": "answered with several ids", "ids": sorted(ids)})
        stored = by_key.get(req["key"])
        if req.get("id") and stored and stored != req["id"]:
            idempotency.append(
                {"key": req["key"], "problem": "stored under another id", "answered": req["id"], "stored": stored}
            )
    gave_up_stored = sum(1 for req in gave_up if req["key"] in by_key)
    retried = [req for req in accepted if req.get("tries", 1) > 1]

    # --- statuses and waiting ------------------------------------------------------------------
    statuses = Counter(txn["status"] for txn in txns.values())
    failed_by_reason = Counter(txn["failure_reason"] for txn in txns.values() if txn["status"] == "failed")
    waiting: Counter[str] = Counter()
    stuck = []
    for txn_id, txn in txns.items():
        if txn["status"] in ("completed", "failed"):
            continue
        reason, explained = waiting_reason(txn, attempts.get(txn_id, []), snap.now)
        waiting[reason] += 1
        if not explained:
            stuck.append(
                {
                    "id": txn_id,
                    "reason": reason,
                    "next_check_at": str(txn["next_check_at"]),
                    "updated_at": str(txn["updated_at"]),
                    "attempts": [(a["gateway"], a["outcome"], a["error"]) for a in attempts.get(txn_id, [])],
                }
            )

    # --- the gateways' records -------------------------------------------------------------------
    by_txn: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for code, items in payments.items():
        for payment in items:
            by_txn[payment["transaction_id"]].append({**payment, "gateway": code})
    attempt_refs = {txn_id: {a["id"]: a for a in items} for txn_id, items in attempts.items()}
    double_paid, orphan_payments, reference_mismatch = [], [], []
    for txn_id, items in by_txn.items():
        paid = [p for p in items if p["status"] in PAID_STATUSES]
        if len(paid) > 1:
            double_paid.append(
                {
                    "id": txn_id,
                    "status": txns.get(txn_id, {}).get("status"),
                    "payments": [(p["gateway"], p["reference"], p["status"]) for p in paid],
                }
            )
        if txn_id not in txns:
            orphan_payments.append({"transaction_id": txn_id, "payments": [(p["gateway"], p["status"]) for p in items]})
            continue
        for payment in items:
            attempt = attempt_refs.get(txn_id, {}).get(payment["reference"])
            if attempt is None or attempt["gateway"] != payment["gateway"]:
                reference_mismatch.append(
                    {"transaction_id": txn_id, "gateway": payment["gateway"], "reference": payment["reference"]}
                )

    completed_unmatched, paid_but_failed, paid_but_expired = [], [], []
    for txn_id, txn in txns.items():
        items = by_txn.get(txn_id, [])
        refs = attempt_refs.get(txn_id, {})
        if txn["status"] == "completed":
            match = [
                p
                for p in items
                if p["gateway"] == txn["gateway"] and p["reference"] in refs and p["status"] == "completed"
            ]
            if not match:
                completed_unmatched.append(
                    {
                        "id": txn_id,
                        "gateway": txn["gateway"],
                        "sandbox": [(p["gateway"], p["reference"], p["status"]) for p in items],
                    }
                )
        elif txn["status"] == "failed":
            paid = [(p["gateway"], p["reference"], p["status"]) for p in items if p["status"] == "completed"]
            if paid:
                entry = {"id": txn_id, "failure_reason": txn["failure_reason"], "payments": paid}
                (paid_but_expired if txn["failure_reason"] == "expired" else paid_but_failed).append(entry)

    # --- callbacks -------------------------------------------------------------------------------
    results = Counter(event["result"] for event in events)
    flagged = Counter(event["flag_reason"] for event in events if event["flagged"])
    applied_per_txn = Counter(event["transaction_id"] for event in events if event["result"] == "applied")
    applied_twice = [{"id": txn_id, "applied_events": n} for txn_id, n in applied_per_txn.items() if n > 1]
    stored_per_ref = Counter((event["gateway"], event["reference"]) for event in events)
    delivered_total, absorbed, acked_not_stored = 0, 0, []
    for code, items in payments.items():
        for payment in items:
            delivered = int(payment.get("callbacks_delivered") or 0)
            delivered_total += delivered
            stored = stored_per_ref.get((code, payment["reference"]), 0)
            absorbed += max(delivered - stored, 0)
            if delivered and not stored:
                acked_not_stored.append(
                    {
                        "gateway": code,
                        "reference": payment["reference"],
                        "transaction_id": payment["transaction_id"],
                        "delivered": delivered,
                    }
                )
    unapplied = [
        {"gateway": e["gateway"], "event_id": e["event_id"], "received_at": str(e["received_at"])}
        for e in events
        if e["result"] == "received"
    ]
    metric_duplicates = metric_sum(snap.metrics_text, "paygate_callbacks_total", result="duplicate")

    attempt_outcomes = Counter(a["outcome"] for items in attempts.values() for a in items)
    attempt_errors = Counter(
        (a["error"] or "").split(";")[0] for items in attempts.values() for a in items if a["error"]
    )
    sandbox_status = {code: dict(Counter(p["status"] for p in items)) for code, items in payments.items()}

    violations = {
        "lost": len(lost),
        "double_paid": len(double_paid),
        "completed_unmatched": len(completed_unmatched),
        "idempotency": len(idempotency),
        "paid_but_failed": len(paid_but_failed),
        "callback_acked_not_stored": len(acked_not_stored),
        "callback_applied_twice": len(applied_twice) + len(snap.duplicate_event_keys),
        "orphan_payments": len(orphan_payments),
        "reference_mismatch": len(reference_mismatch),
    }
    return {
        "ok": not any(violations.values()),
        "violations": violations,
        "counts": {
            "requests": len(history),
            "accepted": len(accepted_ids),
            "accepted_after_retries": len(retried),
            "rejected_by_status": dict(rejected),
            "client_gave_up": len(gave_up),
            "client_gave_up_but_stored": gave_up_stored,
            "transactions_in_db": len(txns),
            "by_status": dict(statuses),
            "completed": statuses.get("completed", 0),
            "failed": statuses.get("failed", 0),
            "failed_by_reason": dict(failed_by_reason),
            "waiting": sum(waiting.values()),
            "waiting_by_reason": dict(waiting),
            "stuck": len(stuck),
            "lost": len(lost),
            "double_paid": len(double_paid),
            "paid_but_expired_for_review": len(paid_but_expired),
            "attempts_by_outcome": dict(attempt_outcomes),
            "attempt_errors": dict(attempt_errors),
            "sandbox_payments_by_status": sandbox_status,
            "callback_events_stored": len(events),
            "callback_events_by_result": dict(results),
            "callback_events_flagged": dict(flagged),
            "callback_events_unapplied": len(unapplied),
            "callbacks_delivered_by_sandboxes": delivered_total,
            "duplicate_callbacks_absorbed": absorbed,
            "duplicate_callbacks_metric": metric_duplicates,
        },
        "examples": {
            "lost": lost[:EXAMPLES],
            "double_paid": double_paid[:EXAMPLES],
            "completed_unmatched": completed_unmatched[:EXAMPLES],
            "idempotency": idempotency[:EXAMPLES],
            "paid_but_failed": paid_but_failed[:EXAMPLES],
            "paid_but_expired": paid_but_expired[:EXAMPLES],
            "callback_acked_not_stored": acked_not_stored[:EXAMPLES],
            "callback_applied_twice": (
                applied_twice + [{"gateway": g, "event_id": e, "rows": n} for g, e, n in snap.duplicate_event_keys]
            )[:EXAMPLES],
            "orphan_payments": orphan_payments[:EXAMPLES],
            "reference_mismatch": reference_mismatch[:EXAMPLES],
            "stuck": stuck[:EXAMPLES],
            "unapplied_callbacks": unapplied[:EXAMPLES],
            "client_gave_up": [
                {"key": r["key"], "tries": r.get("tries"), "last": (r.get("outcomes") or [None])[-1]}
                for r in gave_up[:EXAMPLES]
            ],
        },
        "snapshot_errors": snap.errors,
    }


def scan_logs(log_dir: Any) -> dict[str, dict[str, int]]:
    """ERROR and CRITICAL lines of every process log, grouped by logger and message (for the report)."""
    import json
    from pathlib import Path

    found: dict[str, dict[str, int]] = {}
    for path in sorted(Path(log_dir).glob("*.log")):
        counts: Counter[str] = Counter()
        with open(path, errors="replace") as handle:
            for line in handle:
                if line.startswith("{"):
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("level") in ("ERROR", "CRITICAL"):
                        exception = (entry.get("exception") or "").strip().splitlines()
                        last = f" | {exception[-1][:160]}" if exception else ""
                        counts[f"{entry['level']} {entry.get('logger')}: {entry.get('message', '')[:140]}{last}"] += 1
                elif "ERROR/" in line or "CRITICAL/" in line:
                    counts[re.sub(r"^\[[^\]]*: ", "", line.strip())[:200]] += 1
        if counts:
            found[path.name] = dict(counts.most_common(30))
    return found


def task_stats(log_dir: Any) -> dict[str, Any]:
    """Work done by the workers, from their logs: task runs by name and how much of it was redundant.

    `no_gateway_polls` are processing runs that found no usable route and scheduled themselves
    again; `lookups` are status look-ups actually sent. Runs per stored callback event or per
    look-up well above 1 mean tasks were queued several times for the same row.
    """
    import json
    from pathlib import Path

    runs: Counter[str] = Counter()
    retries: Counter[str] = Counter()
    polls = lookups = answered = 0
    for path in sorted(Path(log_dir).glob("worker-*.log")):
        with open(path, errors="replace") as handle:
            for line in handle:
                if not line.startswith("{"):
                    continue
                try:
                    message = json.loads(line).get("message", "")
                except ValueError:
                    continue
                match = re.match(r"Task ([\w.]+)\[[^\]]*\] (succeeded|raised|retry)", message)
                if match:
                    (retries if match[2] == "retry" else runs)[match[1]] += 1
                elif message.startswith("no gateway available now"):
                    polls += 1
                elif message.startswith("look-up answered"):
                    lookups += 1
                elif message.startswith("gateway answered"):
                    answered += 1
    return {
        "task_runs": dict(runs),
        "task_retries": dict(retries),
        "no_gateway_polls": polls,
        "gateway_calls_answered": answered,
        "lookups_answered": lookups,
    }
