"""The floor's Celery task: one UPDATE, then one HTTP call to its sandbox gateway."""

from __future__ import annotations

import threading

import requests
from celery import shared_task
from django.conf import settings
from django.db import connection

FLOOR_QUEUE = "bench_floor"
_local = threading.local()

# One statement: mark the row as sent and read what the gateway needs (no lock, no attempt row).
_CLAIM = (
    "UPDATE floor_floortransaction SET status = 'processing' WHERE id = %s AND status = 'pending' "
    "RETURNING type, amount::text, currency, country, customer_id"
)


def _session() -> requests.Session:
    # One keep-alive session per thread, as any gateway client keeps.
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.trust_env = False
    return session


@shared_task(name="bench.floor.process", acks_late=True, ignore_result=True)
def process(row_id: str) -> None:
    """No routing, no lock, no attempt row, no outcome handling: the call's answer is not even read."""
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, [row_id])
        row = cursor.fetchone()
    if row is None:
        return  # delivered twice, or already answered
    kind, amount, currency, country, customer_id = row
    _session().post(
        f"{settings.BENCH_FLOOR_GATEWAY_URL}/payments",
        json={
            "reference": row_id,
            "transaction_id": row_id,
            "type": kind,
            "amount": amount,
            "currency": currency,
            "country": country,
            "customer_id": customer_id,
            "callback_url": settings.BENCH_FLOOR_CALLBACK_URL,
        },
        headers={"Authorization": f"Bearer {settings.BENCH_FLOOR_GATEWAY_KEY}", "Idempotency-Key": row_id},
        timeout=(2, 5),
    )


def publish(row_id: object) -> None:
    process.apply_async(args=[str(row_id)], queue=FLOOR_QUEUE)
