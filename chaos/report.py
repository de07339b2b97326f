"""The chaos run's report: the summary table and the results files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos.stack import (
    RESULTS_DIR,
)

# --- reporting -----------------------------------------------------------------------------------------


def summary_table(result: dict[str, Any]) -> str:
    counts, violations = result["check"]["counts"], result["check"]["violations"]
    rows: list[tuple[str, Any]] = [
        ("mode", result["mode"]),
        ("broker", result.get("broker", "Redis")),
        ("wall time (s)", result["wall_seconds"]),
        (
            "load (s) / rate (/s) / clients",
            f"{result['config']['duration']} / {result['config']['rate']} / {result['config']['clients']}",
        ),
        ("requests sent", counts["requests"]),
        ("accepted (202)", counts["accepted"]),
        ("  of which after client retries", counts["accepted_after_retries"]),
        ("refused (4xx)", counts["rejected_by_status"] or 0),
        ("client gave up (no answer)", counts["client_gave_up"]),
        ("transactions in DB", counts["transactions_in_db"]),
        ("completed", counts["completed"]),
        ("failed", counts["failed"]),
    ]
    rows += [(f"  failed: {reason}", n) for reason, n in sorted(counts["failed_by_reason"].items())]
    rows.append(("still waiting", counts["waiting"]))
    rows += [(f"  {reason}", n) for reason, n in sorted(counts["waiting_by_reason"].items())]
    rows += [
        ("stuck (overdue, unexplained)", counts["stuck"]),
        ("LOST", counts["lost"]),
        ("DOUBLE PAID", counts["double_paid"]),
        ("completed w/o matching gateway payment", violations["completed_unmatched"]),
        ("paid at gateway but failed (not expired)", violations["paid_but_failed"]),
        ("paid at gateway, expired (for review)", counts["paid_but_expired_for_review"]),
        ("idempotency anomalies", violations["idempotency"]),
        ("callbacks acked by Paygate, not stored", violations["callback_acked_not_stored"]),
        ("callbacks applied twice", violations["callback_applied_twice"]),
        (
            "callback events stored / by result",
            f"{counts['callback_events_stored']} {counts['callback_events_by_result']}",
        ),
        ("callbacks flagged for review", counts["callback_events_flagged"] or 0),
        ("callbacks unapplied", counts["callback_events_unapplied"]),
        ("duplicate callbacks absorbed (sandbox vs DB)", counts["duplicate_callbacks_absorbed"]),
        ("duplicate callbacks (metric)", counts["duplicate_callbacks_metric"]),
        ("attempts by outcome", counts["attempts_by_outcome"]),
        *refund_rows(result["check"]),
        *webhook_rows(result["check"]),
        *action_rows(result["check"]),
        ("unexpected process exits", len(result["unexpected_exits"])),
        ("task runs (from worker logs)", result["work"]["task_runs"]),
        (
            "  no-gateway polls / gateway answers / look-ups",
            " / ".join(
                str(result["work"][key]) for key in ("no_gateway_polls", "gateway_calls_answered", "lookups_answered")
            ),
        ),
    ]
    rows += [(f"fault: {kind}", n) for kind, n in sorted(result["faults"].items())]
    rows.append(("settled", f"{result['settle']['settled']} after {result['settle']['seconds']}s"))
    rows.append(
        (
            "RESULT",
            "OK"
            if result["check"]["ok"]
            else "VIOLATIONS: " + ", ".join(f"{k}={v}" for k, v in violations.items() if v),
        )
    )
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label.ljust(width)}  {value}" for label, value in rows)


def refund_rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    if "refunds" not in report:
        return []
    counts, violations = report["refunds"]["counts"], report["violations"]
    rows: list[tuple[str, Any]] = [
        ("refund requests sent", counts["requests"]),
        ("  accepted (202)", counts["accepted"]),
        ("  refused as expected (422 above the remainder)", counts["refused_as_expected"]),
        ("  above the remainder, accepted: one had failed", counts["exceeds_accepted_after_a_failure"]),
        ("  client gave up (no answer)", counts["client_gave_up"]),
        ("  refused though refundable", violations["refund_wrongly_refused"]),
        ("refunds in DB / by status", f"{counts['in_db']} {counts['by_status']}"),
    ]
    rows += [(f"  refund failed: {reason}", n) for reason, n in sorted(counts["failed_by_reason"].items())]
    rows.append(("refunds still waiting", counts["waiting"]))
    rows += [(f"  {reason}", n) for reason, n in sorted(counts["waiting_by_reason"].items())]
    rows += [
        ("REFUNDS LOST (missing or stuck)", violations["refunds_lost"] + violations["refunds_stuck"]),
        ("REFUNDED TWICE", violations["refunded_twice"]),
        (
            "refunds above the deposit (DB) / payment (gateway)",
            f"{violations['refunds_above_deposit']} / {violations['gateway_refunds_above_payment']}",
        ),
        ("refund succeeded w/o one gateway refund", violations["refund_succeeded_unmatched"]),
        ("refunded at gateway but failed (not expired)", violations["refunded_but_failed"]),
        ("refunded at gateway, expired (for review)", counts["refunded_but_expired_for_review"]),
        ("refund references unknown or misplaced", violations["refund_reference_mismatch"]),
        ("refund idempotency anomalies", violations["refund_idempotency"]),
        ("refunds of what is not refundable", violations["refund_not_allowed"]),
        (
            "gateway refunds / by status",
            f"{counts['gateway_refunds']} {counts['gateway_refunds_by_status']}",
        ),
        ("refund re-sends absorbed by reference", counts["resends_absorbed_by_reference"]),
        ("refund attempts by outcome", counts["attempts_by_outcome"]),
    ]
    return rows


def webhook_rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    if "webhooks" not in report:
        return []
    counts, violations = report["webhooks"]["counts"], report["violations"]
    return [
        ("webhook events (client's, in DB)", counts["events_in_db"]),
        ("  received at least once", counts["events_received"]),
        (
            "  received more than once (extra copies)",
            f"{counts['events_received_more_than_once']} ({counts['extra_copies']})",
        ),
        ("  POSTs the receiver refused (its outages)", counts["posts_refused_by_receiver"]),
        ("EVENTS UNDELIVERED", violations["events_undelivered"]),
        (
            "  received, not in DB / bad signature or id",
            f"{violations['events_phantom']} / {violations['webhook_bad_deliveries']}",
        ),
        ("  deliveries by status", counts["deliveries_by_status"]),
        ("  delivery attempts by result", counts["delivery_attempts_by_result"]),
    ]


def action_rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    if "actions" not in report:
        return []
    counts, violations = report["actions"]["counts"], report["violations"]
    return [
        ("deposits with return_url (accepted)", counts["with_return_url"]),
        ("  customers by behaviour", counts["customers_by_behaviour"]),
        ("  customers by outcome", counts["customers_by_outcome"]),
        (
            "  reached requires_action / of which without a customer",
            f"{counts['reached_requires_action']} / {counts['reached_without_customer']}",
        ),
        ("  by final status", counts["actions_by_final"]),
        ("FAILED OVER FROM requires_action", violations["failed_over_from_action"]),
        (
            "approved, not completed / cancelled, not cancelled",
            f"{violations['approved_not_completed']} / {violations['cancelled_not_cancelled']}",
        ),
        ("NOT ACTED ON, NOT EXPIRED AT THE DEADLINE", violations["abandoned_not_expired"]),
        ("  expired after the deadline by (s): min / max", counts["expired_after_deadline_s"]),
        (
            "redirects to an unexpected address / w/o transaction_id",
            f"{violations['redirected_elsewhere']} / {violations['merchant_redirect_without_id']}",
        ),
    ]


def write_results(result: dict[str, Any], table: str) -> Path:
    """Every figure in <timestamp>.json and latest.json (ignored by git); the table in latest.md (kept)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"{stamp}.json"
    summary = (
        f"# Paygate fault-injection run — {stamp} UTC\n\n"
        f"`{result['command']}`, seed {result['seed']}. Every figure, the clients' history and the fault "
        "timeline are in `chaos/results/latest.json` beside this file (not committed).\n\n"
        f"```\n{table}\n```\n"
    )
    for target, text in (
        (path, json.dumps(result, indent=1, default=str)),
        (RESULTS_DIR / "latest.json", None),
        (RESULTS_DIR / "latest.md", summary),
    ):
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text if text is not None else path.read_text())
        tmp.replace(target)
    return path
