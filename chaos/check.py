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
- callback_applied_twice: two events applied to one payment or one refund (the unique
  (gateway, event_id) makes one event applying twice impossible; it is checked anyway);
- waiting: transactions that are not final, each with why (explained, or overdue = stuck);
- the refunds (`check_refunds`): none lost, none given twice, never more than the deposit in
  Paygate or at the gateway, each succeeded one matched by exactly one gateway refund;
- the merchant's webhooks (`check_events`): every event of the run's client received at least once;
- the customer actions (`check_actions`): none failed over from `requires_action`, approved ones
  completed, cancelled ones cancelled, ones nobody acted on expired at their deadline, and every
  redirect to the gateway's challenge or the merchant's return_url (with its transaction_id).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from chaos.customers import redirect_transaction_id
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
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)  # refund id -> row
    refund_attempts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # refund id -> attempts
    sandbox_refunds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # gateway code -> refunds
    client_events: list[dict[str, Any]] = field(default_factory=list)  # the run's client's events
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # their webhook deliveries
    delivery_attempts: dict[str, int] = field(default_factory=dict)  # attempts by result


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
                          t.route_round, t.lookup_count, t.needs_review, t.country_id AS country,
                          t.amount, t.currency, t.return_url, t.action
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
                          e.flag_reason, e.transaction_id, e.attempt_id, e.received_at, e.processed_at,
                          e.kind, e.refund_id
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
        # When each transaction first asked for the customer (CONTRACT §11's event).
        for row in conn.execute(
            """SELECT transaction_id, min(created_at) AS at FROM payments_event
                WHERE type = 'transaction.requires_action' AND transaction_id IS NOT NULL GROUP BY transaction_id"""
        ):
            txn = transactions.get(str(row["transaction_id"]))
            if txn is not None:
                txn["requires_action_at"] = row["at"]
    return now, transactions, dict(attempts), events, duplicates


def read_sandboxes() -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]], list[str]]:
    """Each sandbox's payments and refunds (its state file keeps them across its restarts)."""
    import json

    payments: dict[str, list[dict[str, Any]]] = {}
    refunds: dict[str, list[dict[str, Any]]] = {}
    errors = []
    for code in SANDBOXES:
        status, body = http_get(f"{sandbox_url(code)}/_sandbox/payments", timeout=10)
        if status != 200:
            errors.append(f"sandbox {code}: GET /_sandbox/payments answered {status}")
            payments[code], refunds[code] = [], []
            continue
        data = json.loads(body)
        payments[code] = data["payments"]
        refunds[code] = data.get("refunds", [])
    return payments, refunds, errors


def read_refunds_and_events(client_name: str) -> dict[str, Any]:
    """Refunds with their attempts; the client's events with their webhook deliveries."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(PSYCOPG_DSN, row_factory=dict_row, connect_timeout=5) as conn:
        refunds = {
            str(row["id"]): {**row, "id": str(row["id"]), "transaction_id": str(row["transaction_id"])}
            for row in conn.execute(
                """SELECT r.id, r.transaction_id, r.amount, r.currency, r.status, r.failure_reason,
                          g.code AS gateway, r.gateway_refund_id, r.idempotency_key, r.retry_round,
                          r.next_check_at, r.lookup_count, r.needs_review, r.created_at, r.finished_at
                     FROM payments_refund r JOIN gateways_gateway g ON g.id = r.gateway_id"""
            )
        }
        attempts: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in conn.execute(
            """SELECT refund_id, number, outcome, error, http_status FROM payments_refundattempt
                ORDER BY refund_id, number"""
        ):
            attempts[str(row["refund_id"])].append(row)
        events = [
            {"id": f"evt_{row['uid'].hex}", "type": row["type"], "created_at": row["created_at"]}
            for row in conn.execute(
                """SELECT e.uid, e.type, e.created_at FROM payments_event e
                     JOIN payments_apiclient c ON c.id = e.client_id WHERE c.name = %s""",
                (client_name,),
            )
        ]
        deliveries = [
            {**row, "event_id": f"evt_{row.pop('uid').hex}"}
            for row in conn.execute(
                """SELECT e.uid, d.status, d.attempt_count, d.next_attempt_at, d.in_flight_until
                     FROM webhooks_webhookdelivery d JOIN payments_event e ON e.id = d.event_id
                     JOIN payments_apiclient c ON c.id = e.client_id WHERE c.name = %s""",
                (client_name,),
            )
        ]
        delivery_attempts = {
            (row["error"] or f"http_{row['status_code']}"): row["n"]
            for row in conn.execute(
                """SELECT a.error, a.status_code, count(*) AS n FROM webhooks_webhookdeliveryattempt a
                    GROUP BY a.error, a.status_code"""
            )
        }
    return {
        "refunds": refunds,
        "refund_attempts": dict(attempts),
        "client_events": events,
        "deliveries": deliveries,
        "delivery_attempts": delivery_attempts,
    }


def snapshot(client_name: str | None = None) -> Snapshot:
    """The database, the sandboxes' records and /metrics; with `client_name`, that client's events too."""
    now, transactions, attempts, events, duplicates = read_database()
    payments, sandbox_refunds, errors = read_sandboxes()
    extra = read_refunds_and_events(client_name or "")
    status, body = http_get(f"{WEB_URL}/metrics", timeout=10, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    metrics_text = body.decode(errors="replace") if status == 200 else ""
    if status != 200:
        errors.append(f"GET /metrics answered {status}")
    return Snapshot(
        now,
        transactions,
        attempts,
        events,
        duplicates,
        payments,
        metrics_text,
        errors,
        sandbox_refunds=sandbox_refunds,
        **extra,
    )


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
    if status == "requires_action":
        if in_s > 0:
            return "requires_action: waiting for the customer until the deadline", True
        return "requires_action: past the deadline, not expired", False
    return f"{status}: unexpected", False


def check(
    history: list[dict[str, Any]],
    snap: Snapshot,
    *,
    refund_history: list[dict[str, Any]] | None = None,
    received: list[dict[str, Any]] | None = None,
    customers: list[dict[str, Any]] | None = None,
    action_deadline_slack: float = 30.0,
) -> dict[str, Any]:
    """All the checks; a JSON-serialisable report. With `refund_history` the refunds are checked
    too (`check_refunds`), with `received` (what the webhook receiver got) the events
    (`check_events`): their violations join the others, their figures are under their own key."""
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
    # A deposit's refunds have their own callbacks: one applied per payment and one per refund.
    applied_per_object = Counter(
        (event["transaction_id"], str(event["refund_id"]) if event.get("refund_id") else None)
        for event in events
        if event["result"] == "applied"
    )
    applied_twice = [
        {"id": txn_id, **({"refund": refund_id} if refund_id else {}), "applied_events": n}
        for (txn_id, refund_id), n in applied_per_object.items()
        if n > 1
    ]
    stored_per_ref = Counter((event["gateway"], event["reference"]) for event in events)
    delivered_total, absorbed, acked_not_stored = 0, 0, []
    for code in payments:
        # The sandboxes' refunds carry no transaction id: the deposit is found through the refund.
        refund_records = [
            {**item, "transaction_id": (snap.refunds.get(item["reference"]) or {}).get("transaction_id")}
            for item in snap.sandbox_refunds.get(code, [])
        ]
        for payment in [*payments[code], *refund_records]:
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
    report: dict[str, Any] = {
        "ok": False,
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
    for name, section in (
        ("refunds", None if refund_history is None else check_refunds(refund_history, snap)),
        ("webhooks", None if received is None else check_events(received, snap)),
        (
            "actions",
            None
            if customers is None
            else check_actions(history, customers, snap, deadline_slack=action_deadline_slack),
        ),
    ):
        if section is not None:
            violations.update(section.pop("violations"))
            report[name] = section
    report["ok"] = not any(violations.values())
    return report


# --- customer actions (CONTRACT §11) --------------------------------------------------------------


def check_actions(
    history: list[dict[str, Any]],
    customers: list[dict[str, Any]],
    snap: Snapshot,
    *,
    deadline_slack: float = 30.0,
) -> dict[str, Any]:
    """The deposits with return_url and their customers (chaos/customers.py).

    Violations: a transaction that reached `requires_action` with an attempt made after it
    (`failed_over_from_action`: it must never go to another gateway); a customer whose Approve
    the gateway took and whose deposit is not `completed` (`approved_not_completed`), or whose
    Cancel was taken and the deposit is not failed `cancelled` (`cancelled_not_cancelled`); a
    deposit that asked for an action nobody took and is not failed `expired` between its deadline
    and `deadline_slack` seconds after it (`abandoned_not_expired`); a redirect to anything but the
    gateway's challenge, Paygate's return endpoint or the merchant's return_url
    (`redirected_elsewhere`); a redirect to the merchant without the right `transaction_id`
    (`merchant_redirect_without_id`); a deposit sent with return_url stored without it
    (`return_url_not_stored`).
    """
    from datetime import UTC

    txns, attempts = snap.transactions, snap.attempts
    sent = {req["id"] for req in history if req.get("status") == 202 and req.get("return_url")}
    by_id = {record["id"]: record for record in customers}
    reached = {txn_id: txn for txn_id, txn in txns.items() if txn.get("requires_action_at") is not None}

    failed_over, not_stored = [], []
    for txn_id, txn in reached.items():
        later = [a for a in attempts.get(txn_id, []) if a["created_at"] > txn["requires_action_at"]]
        if later:
            failed_over.append({"id": txn_id, "attempts_after": [(a["gateway"], a["outcome"]) for a in later]})
    for txn_id in sent:
        if txn_id in txns and not txns[txn_id].get("return_url"):
            not_stored.append(txn_id)

    approved_wrong, cancelled_wrong, abandoned_wrong, elsewhere, without_id = [], [], [], [], []
    lateness: list[float] = []
    for txn_id in sorted(set(reached) | set(by_id)):
        if txn_id not in txns:
            continue  # lost: reported by the main check
        txn = txns[txn_id]
        record = by_id.get(txn_id, {})
        outcome = (txn["status"], txn["failure_reason"])
        if record.get("redirected_elsewhere"):
            elsewhere.append({"id": txn_id, "to": record["redirected_elsewhere"]})
        redirect = record.get("merchant_redirect")
        if redirect and redirect_transaction_id(redirect) != txn_id:
            without_id.append({"id": txn_id, "redirect": redirect})
        chose = record.get("chose")
        if chose == "approve" and outcome[0] != "completed":
            approved_wrong.append({"id": txn_id, "status": outcome})
        elif chose == "cancel" and outcome != ("failed", "cancelled"):
            cancelled_wrong.append({"id": txn_id, "status": outcome})
        elif chose is None and txn_id in reached:
            # Nobody pressed a button: only the action's deadline ends it.
            deadline = (txn.get("action") or {}).get("deadline")
            finished = txn["finished_at"]
            if outcome != ("failed", "expired") or deadline is None or finished is None:
                abandoned_wrong.append({"id": txn_id, "status": outcome, "customer": record.get("outcome")})
                continue
            late = finished.timestamp() - float(deadline)
            lateness.append(round(late, 1))
            if not 0 <= late <= deadline_slack:
                abandoned_wrong.append(
                    {
                        "id": txn_id,
                        "expired_at": finished.astimezone(UTC).isoformat(),
                        "deadline": deadline,
                        "late_s": round(late, 1),
                    }
                )

    final = Counter(
        f"{txn['status']}" + (f" ({txn['failure_reason']})" if txn["failure_reason"] else "")
        for txn in reached.values()
    )
    return {
        "violations": {
            "failed_over_from_action": len(failed_over),
            "approved_not_completed": len(approved_wrong),
            "cancelled_not_cancelled": len(cancelled_wrong),
            "abandoned_not_expired": len(abandoned_wrong),
            "redirected_elsewhere": len(elsewhere),
            "merchant_redirect_without_id": len(without_id),
            "return_url_not_stored": len(not_stored),
        },
        "counts": {
            "with_return_url": len(sent),
            "customers_by_behaviour": dict(Counter(r["behaviour"] for r in customers)),
            "customers_by_outcome": dict(Counter(r["outcome"] or "unfinished" for r in customers)),
            "reached_requires_action": len(reached),
            # No customer behind them: withdrawals (the sandbox asks an action of every payment in its
            # mode) and deposits without return_url failed over to that gateway. Each must expire.
            "reached_without_customer": len(set(reached) - set(by_id)),
            "actions_by_final": dict(final),
            "expired_after_deadline_s": f"{min(lateness)} / {max(lateness)}" if lateness else "none expired",
        },
        "examples": {
            "failed_over_from_action": failed_over[:EXAMPLES],
            "approved_not_completed": approved_wrong[:EXAMPLES],
            "cancelled_not_cancelled": cancelled_wrong[:EXAMPLES],
            "abandoned_not_expired": abandoned_wrong[:EXAMPLES],
            "redirected_elsewhere": elsewhere[:EXAMPLES],
            "merchant_redirect_without_id": without_id[:EXAMPLES],
            "return_url_not_stored": not_stored[:EXAMPLES],
        },
    }


# --- refunds ---------------------------------------------------------------------------------------

REFUND_FINAL = {"succeeded", "failed"}
# A sandbox refund that takes from what remains of its payment (its own rule: not declined, not failed).
GATEWAY_REFUND_COUNTS = {"accepted", "succeeded"}


def refund_waiting_reason(refund: Mapping[str, Any], now: datetime) -> tuple[str, bool]:
    """Why a refund is not final, and whether that is explained (False: overdue, i.e. stuck)."""
    status, due = refund["status"], refund["next_check_at"]
    if due is None:
        return f"{status}: no next check scheduled", False
    if due <= now:
        return f"{status}: next check overdue", False
    if status == "pending":
        if refund["retry_round"]:
            return "pending: the gateway did not act, retry scheduled", True
        return "pending: queued or gateway call in flight", True
    return "processing: awaiting callback or status look-up", True


def check_refunds(history: list[dict[str, Any]], snap: Snapshot) -> dict[str, Any]:
    """The refunds: what the merchant was told, Paygate's refunds and the gateways' records.

    Violations: an accepted refund missing (`refunds_lost`) or neither final nor explainably
    waiting (`refunds_stuck`); a refund given twice (`refunded_twice`: one request answered with
    two refunds, one idempotency key stored twice, or one reference at two gateways); refunds
    that have not failed adding up to more than the deposit, now or when one was accepted
    (`refunds_above_deposit`); a gateway's refunds of a payment adding up to more than it
    (`gateway_refunds_above_payment`); a refund at a gateway that Paygate does not know, or under
    another gateway or payment (`refund_reference_mismatch`); a succeeded refund without exactly
    one succeeded gateway refund of its reference (`refund_succeeded_unmatched`); a refund the
    gateway made that Paygate calls failed, not expired (`refunded_but_failed`); a refund of
    anything but a completed deposit, or through another gateway (`refund_not_allowed`); a
    request refused that should have been accepted, or refused with another code
    (`refund_wrongly_refused`).
    """
    refunds, txns, sandbox = snap.refunds, snap.transactions, snap.sandbox_refunds

    # --- what the merchant was told ------------------------------------------------------------
    accepted = [req for req in history if req.get("status") == 202]
    accepted_ids = {req["id"] for req in accepted}
    lost = sorted(accepted_ids - set(refunds))
    answers = Counter(
        f"{req['expect']} -> {req['status'] if req['status'] is not None else 'no answer'}"
        + (f" {req['code']}" if req.get("code") else "")
        for req in history
    )
    by_key: dict[str, list[str]] = defaultdict(list)
    for refund_id, refund in refunds.items():
        if refund["idempotency_key"]:
            by_key[refund["idempotency_key"]].append(refund_id)
    twice = []
    idempotency = []
    for req in history:
        if len(set(req.get("ids") or [])) > 1:
            twice.append({"key": req["key"], "problem": "answered with several refunds", "ids": req["ids"]})
        stored = by_key.get(req["key"], [])
        if req.get("id") and stored and req["id"] not in stored:
            idempotency.append({"key": req["key"], "answered": req["id"], "stored": stored})
    twice += [
        {"key": key, "problem": "one key, several refunds", "ids": ids} for key, ids in by_key.items() if len(ids) > 1
    ]
    wrongly_refused = []
    for req in history:
        if req["status"] is None or req["status"] == 202:
            continue
        if req["expect"] == "accepted" or req.get("code") != "amount_exceeds_refundable":
            wrongly_refused.append({k: req.get(k) for k in ("key", "transaction_id", "step", "status", "code")})
    races: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for req in history:
        if req["expect"] == "race":
            races[req["transaction_id"]].append(req)
    for txn_id, pair in races.items():
        answered = [req for req in pair if req["status"] is not None]
        if len(answered) == len(pair) and not any(req["status"] == 202 for req in answered):
            wrongly_refused.append({"transaction_id": txn_id, "step": "race", "problem": "both racers refused"})
    exceeds_accepted = [req for req in history if req["expect"] == "exceeds" and req["status"] == 202]

    # --- Paygate's refunds --------------------------------------------------------------------
    by_txn: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for refund in refunds.values():
        by_txn[refund["transaction_id"]].append(refund)
    above_deposit, not_allowed = [], []
    for txn_id, items in by_txn.items():
        txn = txns.get(txn_id)
        if txn is None or txn["type"] != "deposit" or txn["status"] != "completed":
            not_allowed.append({"transaction_id": txn_id, "problem": "not a completed deposit"})
            continue
        amount = Decimal(txn["amount"])
        held = sum((Decimal(r["amount"]) for r in items if r["status"] != "failed"), Decimal(0))
        if held > amount:
            above_deposit.append({"transaction_id": txn_id, "amount": str(amount), "not_failed": str(held)})
        for refund in sorted(items, key=lambda r: r["created_at"]):
            if refund["gateway"] != txn["gateway"]:
                not_allowed.append({"refund": refund["id"], "problem": f"{refund['gateway']} is not {txn['gateway']}"})
            # When it was accepted: the earlier refunds that had not (yet) failed, and this one.
            earlier = sum(
                (
                    Decimal(other["amount"])
                    for other in items
                    if other["created_at"] < refund["created_at"]
                    and not (
                        other["status"] == "failed"
                        and other["finished_at"] is not None
                        and other["finished_at"] <= refund["created_at"]
                    )
                ),
                Decimal(0),
            )
            if earlier + Decimal(refund["amount"]) > amount:
                above_deposit.append(
                    {
                        "transaction_id": txn_id,
                        "refund": refund["id"],
                        "amount": str(amount),
                        "held_when_accepted": str(earlier + Decimal(refund["amount"])),
                    }
                )
    statuses = Counter(refund["status"] for refund in refunds.values())
    failed_by_reason = Counter(r["failure_reason"] for r in refunds.values() if r["status"] == "failed")
    waiting: Counter[str] = Counter()
    stuck = []
    for refund in refunds.values():
        if refund["status"] in REFUND_FINAL:
            continue
        reason, explained = refund_waiting_reason(refund, snap.now)
        waiting[reason] += 1
        if not explained:
            stuck.append(
                {
                    "id": refund["id"],
                    "reason": reason,
                    "gateway": refund["gateway"],
                    "attempts": [(a["outcome"], a["error"]) for a in snap.refund_attempts.get(refund["id"], [])],
                }
            )

    # --- the gateways' records ----------------------------------------------------------------
    at_gateways: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for code, items in sandbox.items():
        for item in items:
            at_gateways[item["reference"]].append({**item, "gateway": code})
    twice += [
        {"reference": ref, "problem": "at several gateways", "gateways": [i["gateway"] for i in items]}
        for ref, items in at_gateways.items()
        if len({i["gateway"] for i in items}) > 1
    ]
    mismatch = []
    for ref, items in at_gateways.items():
        known = refunds.get(ref)
        for item in items:
            txn = txns.get(known["transaction_id"]) if known else None
            if known is None or known["gateway"] != item["gateway"]:
                mismatch.append({"reference": ref, "gateway": item["gateway"], "problem": "no such refund here"})
            elif txn is None or txn["gateway_reference"] != item["payment_id"]:
                mismatch.append({"reference": ref, "gateway": item["gateway"], "problem": "another payment"})
    payment_amounts = {
        (code, payment["payment_id"]): Decimal(payment["amount"])
        for code, items in snap.payments.items()
        for payment in items
    }
    per_payment: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for code, items in sandbox.items():
        for item in items:
            if item["status"] in GATEWAY_REFUND_COUNTS:
                per_payment[(code, item["payment_id"])] += Decimal(item["amount"])
    gateway_above = [
        {"gateway": code, "payment_id": pid, "refunded": str(total), "amount": str(payment_amounts.get((code, pid)))}
        for (code, pid), total in per_payment.items()
        if (code, pid) not in payment_amounts or total > payment_amounts[(code, pid)]
    ]
    succeeded_unmatched: list[dict[str, Any]] = []
    refunded_but_failed: list[dict[str, Any]] = []
    refunded_but_expired: list[dict[str, Any]] = []
    for refund in refunds.values():
        made = [i for i in at_gateways.get(refund["id"], []) if i["gateway"] == refund["gateway"]]
        succeeded = [i for i in made if i["status"] == "succeeded"]
        if refund["status"] == "succeeded" and len(succeeded) != 1:
            succeeded_unmatched.append(
                {"id": refund["id"], "gateway": refund["gateway"], "at_gateway": [i["status"] for i in made]}
            )
        elif refund["status"] == "failed" and succeeded:
            entry = {"id": refund["id"], "failure_reason": refund["failure_reason"]}
            (refunded_but_expired if refund["failure_reason"] == "expired" else refunded_but_failed).append(entry)
    resends = sum(max(int(item.get("requests") or 1) - 1, 0) for items in sandbox.values() for item in items)
    gateway_status = {code: dict(Counter(item["status"] for item in items)) for code, items in sandbox.items()}
    attempt_outcomes = Counter(a["outcome"] for items in snap.refund_attempts.values() for a in items)

    violations = {
        "refunds_lost": len(lost),
        "refunds_stuck": len(stuck),
        "refunded_twice": len(twice),
        "refund_idempotency": len(idempotency),
        "refunds_above_deposit": len(above_deposit),
        "gateway_refunds_above_payment": len(gateway_above),
        "refund_reference_mismatch": len(mismatch),
        "refund_succeeded_unmatched": len(succeeded_unmatched),
        "refunded_but_failed": len(refunded_but_failed),
        "refund_not_allowed": len(not_allowed),
        "refund_wrongly_refused": len(wrongly_refused),
    }
    return {
        "violations": violations,
        "counts": {
            "requests": len(history),
            "accepted": len(accepted_ids),
            "accepted_after_retries": sum(1 for req in accepted if req.get("tries", 1) > 1),
            "answers": dict(answers),
            "refused_as_expected": sum(
                1
                for req in history
                if req["expect"] in ("exceeds", "race") and req.get("code") == "amount_exceeds_refundable"
            ),
            "exceeds_accepted_after_a_failure": len(exceeds_accepted),
            "client_gave_up": sum(1 for req in history if req.get("status") is None),
            "in_db": len(refunds),
            "by_status": dict(statuses),
            "failed_by_reason": dict(failed_by_reason),
            "waiting": sum(waiting.values()),
            "waiting_by_reason": dict(waiting),
            "lost": len(lost),
            "refunded_twice": len(twice),
            "refunded_but_expired_for_review": len(refunded_but_expired),
            "gateway_refunds": sum(len(items) for items in sandbox.values()),
            "gateway_refunds_by_status": gateway_status,
            "resends_absorbed_by_reference": resends,
            "attempts_by_outcome": dict(attempt_outcomes),
        },
        "examples": {
            "lost": lost[:EXAMPLES],
            "stuck": stuck[:EXAMPLES],
            "refunded_twice": twice[:EXAMPLES],
            "idempotency": idempotency[:EXAMPLES],
            "above_deposit": above_deposit[:EXAMPLES],
            "gateway_above_payment": gateway_above[:EXAMPLES],
            "reference_mismatch": mismatch[:EXAMPLES],
            "succeeded_unmatched": succeeded_unmatched[:EXAMPLES],
            "refunded_but_failed": refunded_but_failed[:EXAMPLES],
            "refunded_but_expired": refunded_but_expired[:EXAMPLES],
            "not_allowed": not_allowed[:EXAMPLES],
            "wrongly_refused": wrongly_refused[:EXAMPLES],
            "exceeds_accepted": [
                {k: req.get(k) for k in ("key", "transaction_id", "id", "amount_sent")} for req in exceeds_accepted
            ][:EXAMPLES],
        },
    }


# --- merchant webhooks -----------------------------------------------------------------------------


def accepted_answer(answer: int | str) -> bool:
    """The receiver took the delivery: a 2xx, or a held request (released with 200)."""
    return not isinstance(answer, int) or 200 <= answer < 300


def check_events(received: list[dict[str, Any]], snap: Snapshot) -> dict[str, Any]:
    """Every event of the run's client delivered at least once to its receiver, by event id.

    `received` holds one entry per POST the receiver got: `id` (the Paygate-Event-Id header),
    `body_id` (the body's `id`), `signature_ok` and `answer` (what the receiver answered; only a
    2xx delivers). Violations: an event never delivered (`events_undelivered`); a delivery of an
    event that the database does not have (`events_phantom`); a POST whose signature does not
    check out or whose header and body disagree (`webhook_bad_deliveries`).
    """
    in_db = {event["id"]: event for event in snap.client_events}
    copies = Counter(item["id"] for item in received if accepted_answer(item.get("answer", 200)))
    missing = sorted(set(in_db) - set(copies))
    phantom = sorted(set(copies) - set(in_db))
    bad = [item for item in received if not item["signature_ok"] or item["body_id"] != item["id"]]
    duplicates = {event_id: n for event_id, n in copies.items() if n > 1}
    deliveries_by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for delivery in snap.deliveries:
        deliveries_by_event[delivery["event_id"]].append(delivery)
    return {
        "violations": {
            "events_undelivered": len(missing),
            "events_phantom": len(phantom),
            "webhook_bad_deliveries": len(bad),
        },
        "counts": {
            "events_in_db": len(in_db),
            "events_by_type": dict(Counter(event["type"] for event in in_db.values())),
            "posts_received": len(received),
            "posts_refused_by_receiver": sum(1 for item in received if not accepted_answer(item.get("answer", 200))),
            "events_received": len(set(copies) & set(in_db)),
            "events_received_more_than_once": len(duplicates),
            "extra_copies": sum(n - 1 for n in duplicates.values()),
            "undelivered": len(missing),
            "deliveries_by_status": dict(Counter(d["status"] for d in snap.deliveries)),
            "delivery_attempts_by_result": snap.delivery_attempts,
        },
        "examples": {
            "undelivered": [
                {
                    "id": event_id,
                    "type": in_db[event_id]["type"],
                    "created_at": str(in_db[event_id]["created_at"]),
                    "deliveries": [
                        (d["status"], d["attempt_count"], str(d["next_attempt_at"]))
                        for d in deliveries_by_event.get(event_id, [])
                    ],
                }
                for event_id in missing[:EXAMPLES]
            ],
            "phantom": phantom[:EXAMPLES],
            "bad": [{k: v for k, v in item.items() if k != "body"} for item in bad[:EXAMPLES]],
            "duplicates": dict(list(duplicates.items())[:EXAMPLES]),
        },
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
    """Work done by the workers (the webhook worker too), from their logs: task runs by name and how
    much of it was redundant.

    `no_gateway_polls` are processing runs that found no usable route and scheduled themselves
    again; `lookups` are status look-ups actually sent. Runs per stored callback event or per
    look-up well above 1 mean tasks were queued several times for the same row.
    """
    import json
    from pathlib import Path

    runs: Counter[str] = Counter()
    retries: Counter[str] = Counter()
    polls = lookups = answered = 0
    for path in sorted([*Path(log_dir).glob("worker-*.log"), *Path(log_dir).glob("webhooks.log")]):
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
