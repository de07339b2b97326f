"""The chaos run's waits on the stack: ready (the canary), settled, and every event at the webhook receiver."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests

from chaos.check import accepted_answer
from chaos.load import COUNTRIES
from chaos.stack import (
    CLIENT_NAME,
    PSYCOPG_DSN,
    SANDBOXES,
    WEB_URL,
    WEBHOOK_PATH,
    ChaosError,
    http_get,
    sandbox_url,
    wait_for,
)
from chaos.timeline import Timeline
from harness import Receiver

# --- waiting for the stack ---------------------------------------------------------------------------


def db_progress() -> dict[str, int] | None:
    """Non-final transactions and refunds and unapplied callbacks, or None while the database cannot be read."""
    import psycopg

    try:
        with psycopg.connect(PSYCOPG_DSN, connect_timeout=3) as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM payments_transaction WHERE status IN ('pending', 'processing', 'requires_action')"
            ).fetchone()[0]
            unapplied = conn.execute(
                "SELECT count(*) FROM callbacks_callbackevent WHERE result = 'received'"
            ).fetchone()[0]
            total = conn.execute("SELECT count(*) FROM payments_transaction").fetchone()[0]
            refunds_waiting = conn.execute(
                "SELECT count(*) FROM payments_refund WHERE status IN ('pending', 'processing')"
            ).fetchone()[0]
    except psycopg.Error:
        return None
    return {"waiting": waiting, "unapplied": unapplied, "total": total, "refunds_waiting": refunds_waiting}


def _settled(progress: dict[str, int] | None) -> bool:
    return progress is not None and not (progress["waiting"] or progress["unapplied"] or progress["refunds_waiting"])


def client_event_ids(client_name: str) -> set[str] | None:
    """The ids of the client's events (as its webhooks carry them), or None while the database cannot be read."""
    import psycopg

    try:
        with psycopg.connect(PSYCOPG_DSN, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT e.uid FROM payments_event e JOIN payments_apiclient c ON c.id = e.client_id WHERE c.name = %s",
                (client_name,),
            ).fetchall()
    except psycopg.Error:
        return None
    return {f"evt_{uid.hex}" for (uid,) in rows}


def callbacks_delivered() -> int:
    total = 0
    for code in SANDBOXES:
        status, body = http_get(f"{sandbox_url(code)}/_sandbox/payments", timeout=10)
        if status == 200:
            total += sum(int(p.get("callbacks_delivered") or 0) for p in json.loads(body)["payments"])
    return total


def settle(timeout: float, timeline: Timeline, undelivered: Callable[[], int | None] | None = None) -> dict[str, Any]:
    """Poll until no transaction or refund is waiting and no callback is unapplied (then a short quiet
    period), and, with `undelivered`, until it counts no event left to deliver; or the deadline."""
    started = time.monotonic()
    deadline = started + timeout
    last_print = 0.0
    progress = None
    while time.monotonic() < deadline:
        progress = db_progress()
        if _settled(progress):
            break
        if time.monotonic() - last_print > 10:
            last_print = time.monotonic()
            print(f"  settling: {progress}", flush=True)
        time.sleep(1.0)
    settled = _settled(progress)
    # Late copies of duplicated or jittered callbacks: wait until deliveries stop changing (bounded).
    quiet_deadline = min(time.monotonic() + 15.0, deadline + 15.0)
    previous = callbacks_delivered()
    while time.monotonic() < quiet_deadline:
        time.sleep(2.0)
        current = callbacks_delivered()
        if current == previous:
            break
        previous = current
    # Webhook deliveries drain on their own worker; the last events were written just now.
    left = None
    webhooks_seconds = 0.0
    if undelivered is not None:
        drain_started = time.monotonic()
        drain_deadline = max(deadline, time.monotonic() + 10.0)
        while True:
            left = undelivered()
            if left == 0 or time.monotonic() >= drain_deadline:
                break
            if time.monotonic() - last_print > 10:
                last_print = time.monotonic()
                print(f"  settling: {left} events not yet delivered to the webhook receiver", flush=True)
            time.sleep(1.0)
        webhooks_seconds = round(time.monotonic() - drain_started, 1)
        settled = settled and left == 0
    elapsed = round(time.monotonic() - started, 1)
    timeline.record(
        "settled" if settled else "settle_deadline", seconds=elapsed, progress=progress, events_undelivered=left
    )
    return {
        "settled": settled,
        "seconds": elapsed,
        "last_progress": progress,
        "events_undelivered": left,
        "webhooks_drain_seconds": webhooks_seconds,
    }


def register_webhook(api_key: str, url: str) -> str:
    """The merchant's endpoint for every event type; its signing secret."""
    response = requests.post(
        f"{WEB_URL}/api/v1/webhook-endpoints",
        json={"url": url, "events": ["*"]},
        headers={"Authorization": f"Api-Key {api_key}"},
        timeout=10,
    )
    if response.status_code != 201:
        raise ChaosError(f"registering the webhook endpoint answered {response.status_code}: {response.text[:300]}")
    return str(response.json()["secret"])


def received_events(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """One entry per POST the receiver got: the header's and the body's event id, the signature's check,
    what the receiver answered."""
    items = []
    for item in receiver.at(WEBHOOK_PATH):
        headers = {name.lower(): value for name, value in item.headers.items()}
        try:
            body = item.json()
            body_id, event_type = body.get("id"), body.get("type")
        except (ValueError, AttributeError):
            body_id = event_type = None
        items.append(
            {
                "id": headers.get("paygate-event-id"),
                "body_id": body_id,
                "type": event_type,
                "signature_ok": item.signature_valid(secret),
                "answer": item.answer,
            }
        )
    return items


def undelivered_count(receiver: Receiver) -> int | None:
    """The client's events that the receiver has not got yet (None while the database cannot be read)."""
    ids = client_event_ids(CLIENT_NAME)
    if ids is None:
        return None
    got = set()
    for item in receiver.at(WEBHOOK_PATH):
        if accepted_answer(item.answer):
            got.add({name.lower(): value for name, value in item.headers.items()}.get("paygate-event-id"))
    return len(ids - got)


def canary(api_key: str, timeout: float = 60.0) -> float:
    """One deposit end to end (API, worker, sandbox, callback): proves the stack is ready."""
    started = time.monotonic()
    headers = {"Authorization": f"Api-Key {api_key}", "Idempotency-Key": f"chaos-canary-{uuid.uuid4().hex}"}
    body = {
        "customer_id": "cus_canary",
        "country": "DE",
        "currency": "EUR",
        "amount": "1.00",
        "payment_details": COUNTRIES["DE"][1],
        "metadata": {"canary": True},
    }
    session = requests.Session()
    session.trust_env = False
    response = session.post(f"{WEB_URL}/api/v1/deposits", json=body, headers=headers, timeout=10)
    if response.status_code != 202:
        raise ChaosError(f"canary deposit answered {response.status_code}: {response.text[:300]}")
    txn_id = response.json()["id"]

    def final() -> str | None:
        status = session.get(f"{WEB_URL}/api/v1/transactions/{txn_id}", headers=headers, timeout=5).json()["status"]
        return status if status in ("completed", "failed") else None

    status = wait_for(final, timeout=timeout, what="the canary deposit to finish", interval=0.2)
    if status != "completed":
        raise ChaosError(f"the canary deposit ended {status}")
    return round(time.monotonic() - started, 2)
