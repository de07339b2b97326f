"""The delivery engine: one process claims due deliveries in batches, POSTs them from a pool of
threads, and writes their results in batches (`manage.py run_webhook_dispatcher`).

A claim is one short transaction: the endpoints that have due deliveries are locked (FOR NO KEY
UPDATE SKIP LOCKED: two dispatchers never claim for the same endpoint at once, and a status
change writing a delivery, which needs only a KEY SHARE lock on its endpoint, never waits), then
one statement takes, per endpoint, its oldest due deliveries up to its free slots
(PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY less its tries in flight) and marks them in flight. A slot
is held until the try's result is written: each POST ends by its wall-clock deadline
(PAYGATE_WEBHOOK_TIMEOUT_SECONDS, core.deadline), so an endpoint that never answers, or answers
one byte at a time, holds its slots and the threads behind them for that long, never more, and
holds nothing of any other endpoint. Should the dispatcher die, its claims lapse a few seconds
after the deadline and the deliveries are claimed again (at least once).

The claim costs a few statements per batch, not per delivery; the results of a batch are one
INSERT of its tries and one pipelined UPDATE per delivery. Deliveries are found by polling the
outbox (every PAYGATE_WEBHOOK_POLL_SECONDS when idle): nothing is published to a broker.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.http import HttpClient, TransportError
from payments.models import Event
from payments.representations import event_representation

from .metrics import WEBHOOK_DELIVERIES
from .models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from .signing import delivery_headers, secret_key

logger = logging.getLogger(__name__)

# A claim outlives its try's deadline by this much before it is presumed dead (a killed dispatcher's
# claims keep counting against the endpoint's concurrency until then: keep it short).
IN_FLIGHT_GRACE_SECONDS = 5.0

_PENDING = WebhookDelivery.Status.PENDING


def retry_schedule() -> list[float]:
    return [float(item) for item in str(settings.PAYGATE_WEBHOOK_RETRY_SCHEDULE).split(",") if item.strip()]


@dataclass(frozen=True, slots=True)
class Try:
    """One claimed delivery, with what its POST needs."""

    delivery_id: int
    attempt_count: int
    endpoint_id: Any
    endpoint: WebhookEndpoint | None  # None: deleted or disabled, ended without a POST
    end_error: str
    event: Event


@dataclass(frozen=True, slots=True)
class Result:
    delivery_id: int
    attempt_count: int
    status_code: int | None
    error: str
    duration_ms: float
    final: bool
    endpoint_id: Any = None


# --- claiming ------------------------------------------------------------------------------------


def _db(field: str, value: Any, model: Any = WebhookDelivery) -> Any:
    return model._meta.get_field(field).get_db_prep_value(value, connection)


_CLAIM_SQL = """
WITH busy AS (
    SELECT endpoint_id,
           SUM(CASE WHEN claimed_by = %s THEN 1 ELSE 0 END) AS mine,
           SUM(CASE WHEN claimed_by = %s THEN 0 ELSE 1 END) AS others
    FROM webhooks_webhookdelivery
    WHERE endpoint_id IN ({ids}) AND status = %s AND in_flight_until > %s
    GROUP BY endpoint_id
), ranked AS (
    SELECT id, endpoint_id, next_attempt_at,
           ROW_NUMBER() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at, id) AS place
    FROM webhooks_webhookdelivery
    WHERE endpoint_id IN ({ids}) AND status = %s AND next_attempt_at <= %s
      AND (in_flight_until IS NULL OR in_flight_until <= %s)
)
UPDATE webhooks_webhookdelivery
SET in_flight_until = %s, claimed_by = %s, waiting_since = NULL, updated_at = %s
WHERE id IN (
    SELECT ranked.id FROM ranked LEFT JOIN busy ON busy.endpoint_id = ranked.endpoint_id
    WHERE ranked.place <= %s - COALESCE(busy.mine, 0) AND COALESCE(busy.others, 0) = 0
    ORDER BY ranked.next_attempt_at, ranked.id
    LIMIT %s
)
RETURNING id, endpoint_id, event_id, attempt_count
"""


def claim_hold_seconds() -> float:
    """How long a claimed delivery is held: it may wait behind the tries queued before it on its
    endpoint's slots (each ended by the timeout), then its own try."""
    timeout = float(settings.PAYGATE_WEBHOOK_TIMEOUT_SECONDS)
    return timeout * (int(settings.PAYGATE_WEBHOOK_CLAIM_DEPTH) + 1) + IN_FLIGHT_GRACE_SECONDS


def deliveries_claim(*, limit: int, owner: str = "", now: datetime | None = None) -> list[Try]:
    """Claim up to `limit` due deliveries for `owner`, oldest first per endpoint.

    An endpoint is served by one dispatcher at a time (none of its deliveries is held by another
    owner), which holds at most PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY x PAYGATE_WEBHOOK_CLAIM_DEPTH of
    them and sends at most PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY at once (`Dispatcher`).
    """
    now = now or timezone.now()
    owner = owner or "once"
    per_endpoint = int(settings.PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY) * max(
        1, int(settings.PAYGATE_WEBHOOK_CLAIM_DEPTH)
    )
    hold = now + timedelta(seconds=claim_hold_seconds())
    due = (
        WebhookDelivery.objects.filter(status=_PENDING, next_attempt_at__lte=now)
        .exclude(in_flight_until__gt=now)
        .values("endpoint_id")
    )
    with transaction.atomic():
        endpoints = {
            endpoint.pk: endpoint
            for endpoint in WebhookEndpoint.objects.select_for_update(no_key=True, skip_locked=True)
            .filter(pk__in=due)
            .order_by("pk")
        }
        if not endpoints:
            return []
        ids = [_db("id", pk, WebhookEndpoint) for pk in endpoints]
        marks = ", ".join(["%s"] * len(ids))
        pending, at = _db("status", _PENDING), _db("next_attempt_at", now)
        params = [owner, owner, *ids, pending, at, *ids, pending, at, at]
        params += [_db("in_flight_until", hold), owner, at, per_endpoint, limit]
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM_SQL.format(ids=marks), params)
            rows = cursor.fetchall()
    if not rows:
        return []
    by_db_id = {_db("id", pk, WebhookEndpoint): endpoint for pk, endpoint in endpoints.items()}
    events = Event.objects.in_bulk([row[2] for row in rows])
    tries = []
    for delivery_id, endpoint_id, event_id, attempt_count in sorted(rows):
        endpoint = by_db_id.get(endpoint_id) or endpoints[endpoint_id]
        end_error = ""
        if endpoint.deleted_at is not None:
            end_error = "endpoint_deleted"
        elif not endpoint.active:
            end_error = "endpoint_disabled"
        tries.append(
            Try(
                delivery_id=delivery_id,
                attempt_count=attempt_count,
                endpoint_id=endpoint.pk,
                endpoint=None if end_error else endpoint,
                end_error=end_error,
                event=events[event_id],
            )
        )
    return tries


# --- sending -------------------------------------------------------------------------------------


_http: HttpClient | None = None
_http_lock = threading.Lock()
_keys: dict[str, bytes] = {}


def _client() -> HttpClient:
    global _http
    if _http is None:
        with _http_lock:
            if _http is None:
                from .services import webhook_address_policy

                # Nothing of the answer is kept but its status: a small cap on what is read of it.
                _http = HttpClient(
                    pool_maxsize=max(16, int(settings.PAYGATE_WEBHOOK_DISPATCH_THREADS)),
                    pool_connections=256,
                    max_reply_bytes=64 * 1024,
                    address_policy=webhook_address_policy,
                    peer_kind="webhook_endpoint",
                )
    return _http


def _key(secret: str) -> bytes:
    key = _keys.get(secret)
    if key is None:
        if len(_keys) > 10_000:
            _keys.clear()
        key = _keys[secret] = secret_key(secret)
    return key


def delivery_send(item: Try) -> Result:
    """POST one claimed delivery, signed; what came back. Never raises for the endpoint's faults."""
    if item.endpoint is None:
        return Result(
            item.delivery_id, item.attempt_count, None, item.end_error, 0.0, final=True, endpoint_id=item.endpoint_id
        )
    endpoint = item.endpoint
    event_id = item.event.public_id
    body = json.dumps(event_representation(item.event), separators=(",", ":")).encode()
    headers = delivery_headers(
        secret=endpoint.secret, key=_key(endpoint.secret), event_id=event_id, body=body, timestamp=int(time.time())
    )
    timeout = float(settings.PAYGATE_WEBHOOK_TIMEOUT_SECONDS)
    started = time.perf_counter()
    status_code: int | None = None
    error = ""
    try:
        reply = _client().send(
            "POST",
            endpoint.url,
            headers=headers,
            data=body,
            connect_timeout=min(timeout, 5.0),
            read_timeout=timeout,
            deadline=timeout,
            peer=str(endpoint.pk),
        )
        status_code = reply.status
        if not 200 <= status_code < 300:
            error = f"http_{status_code}"
    except TransportError as exc:
        error = exc.code
    except Exception:  # a fault of ours must not lose the claim's result
        logger.exception("webhook delivery failed unexpectedly", extra={"delivery": item.delivery_id})
        error = "internal_error"
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    if not error and duration_ms > timeout * 1000:
        error = "timeout"  # answered, but later than the contract's window
    return Result(
        item.delivery_id, item.attempt_count, status_code, error, duration_ms, final=False, endpoint_id=item.endpoint_id
    )


# --- recording -----------------------------------------------------------------------------------


_RECORD_SQL = """
UPDATE webhooks_webhookdelivery
SET status = %s, attempt_count = attempt_count + 1, in_flight_until = NULL, claimed_by = '',
    next_attempt_at = %s, finished_at = %s, updated_at = %s
WHERE id = %s AND attempt_count = %s AND status = %s
"""


def results_record(results: Sequence[Result], *, now: datetime | None = None) -> None:
    """Write a batch of tries and what follows from each: done, failed for good, or due again on the schedule.

    A result whose claim lapsed and was tried again meanwhile (its attempt count moved on) is kept
    as a try, and changes nothing else.
    """
    if not results:
        return
    now = now or timezone.now()
    schedule = retry_schedule()
    with transaction.atomic():
        # A delivery deleted meanwhile (its endpoint deleted for good in the admin) has nothing to record.
        existing = set(
            WebhookDelivery.objects.select_for_update()
            .filter(pk__in=[result.delivery_id for result in results])
            .values_list("pk", flat=True)
        )
        _results_write([result for result in results if result.delivery_id in existing], now, schedule)


def _results_write(results: Sequence[Result], now: datetime, schedule: list[float]) -> None:
    if not results:
        return
    at = _db("updated_at", now)
    pending = _db("status", _PENDING)
    rows = []
    outcomes = []
    for result in results:
        made = result.attempt_count + 1
        if not result.error:
            status, next_at, finished = WebhookDelivery.Status.SUCCEEDED, None, at
        elif result.final or made > len(schedule):
            status, next_at, finished = WebhookDelivery.Status.FAILED, None, at
        else:
            status, finished = _PENDING, None
            next_at = _db("next_attempt_at", now + timedelta(seconds=schedule[made - 1]))
        outcomes.append("retry" if status == _PENDING else str(status))
        rows.append((_db("status", status), next_at, finished, at, result.delivery_id, result.attempt_count, pending))
    WebhookDeliveryAttempt.objects.bulk_create(
        [
            WebhookDeliveryAttempt(
                delivery_id=result.delivery_id,
                status_code=result.status_code,
                error=result.error[:255],
                duration_ms=result.duration_ms,
            )
            for result in results
        ]
    )
    with connection.cursor() as cursor:
        cursor.executemany(_RECORD_SQL, rows)
    for outcome in outcomes:
        WEBHOOK_DELIVERIES.labels(result=outcome).inc()


# --- the loop ------------------------------------------------------------------------------------


def deliveries_dispatch_once(*, limit: int = 100) -> int:
    """Claim what is due, send it, record it, in this thread: one round (tests, and a manual nudge)."""
    tries = deliveries_claim(limit=limit)
    results_record([delivery_send(item) for item in tries])
    return len(tries)


class Dispatcher:
    """Claims due deliveries, sends each endpoint's at most PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY at a
    time from a pool of threads, and writes what came back; until `stop` is set.

    The database is visited at most every `tick` seconds while busy (one claim and one batch of
    results), every `poll_seconds` while nothing new came; between visits, a try that ends hands
    its slot to the next delivery of its endpoint that this dispatcher holds, at once. In all at
    most `threads` tries are in flight, and an endpoint never more than its concurrency.
    """

    def __init__(self, *, threads: int, poll_seconds: float, tick: float = 0.05) -> None:
        self.threads = threads
        self.poll_seconds = poll_seconds
        self.tick = min(tick, poll_seconds)
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.stop = threading.Event()
        self._done: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook")
        self._waiting: dict[Any, deque[Try]] = {}  # per endpoint: held, not yet sent
        self._sending: dict[Any, int] = {}  # per endpoint: tries in flight
        self._sending_total = 0
        self._held = 0  # claimed and not yet recorded
        self._cap = max(1, int(settings.PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY))

    def _send(self, item: Try) -> None:
        self._done.put(delivery_send(item))

    def _pump(self) -> None:
        """Start what may start: per endpoint up to its concurrency, in all up to the threads (an
        endpoint that waits for a thread goes to the back of the line once it got one)."""
        for endpoint_id in list(self._waiting):
            if self._sending_total >= self.threads:
                return
            waiting = self._waiting.pop(endpoint_id)
            while waiting and self._sending.get(endpoint_id, 0) < self._cap and self._sending_total < self.threads:
                self._sending[endpoint_id] = self._sending.get(endpoint_id, 0) + 1
                self._sending_total += 1
                self._pool.submit(self._send, waiting.popleft())
            if waiting:
                self._waiting[endpoint_id] = waiting

    def _collect(self, until: float, results: list[Result]) -> None:
        """Gather results until `until` (monotonic), handing each freed slot on at once."""
        while True:
            left = until - time.monotonic()
            try:
                result = self._done.get(timeout=left) if left > 0 else self._done.get_nowait()
            except queue.Empty:
                return
            results.append(result)
            self._sending_total -= 1
            self._sending[result.endpoint_id] -= 1
            if not self._sending[result.endpoint_id]:
                del self._sending[result.endpoint_id]
            self._pump()

    def run(self) -> None:
        capacity = self.threads * max(1, int(settings.PAYGATE_WEBHOOK_CLAIM_DEPTH))
        busy = False
        while not self.stop.is_set() or self._held:
            results: list[Result] = []
            self._collect(time.monotonic() + (self.tick if busy else self.poll_seconds), results)
            if results:
                self._held -= len(results)
                self._record(results)
            claimed = 0
            if not self.stop.is_set() and self._held < capacity:
                try:
                    tries = deliveries_claim(limit=capacity - self._held, owner=self.owner)
                except Exception:
                    logger.exception("webhook claim failed; trying again")
                    connection.close()
                    tries = []
                    self.stop.wait(1.0)
                for item in tries:
                    self._waiting.setdefault(item.endpoint_id, deque()).append(item)
                self._pump()
                claimed = len(tries)
                self._held += claimed
            elif self.stop.is_set():
                # Held deliveries not yet sent are let go at once (not left to lapse).
                self._release()
            busy = bool(results or claimed)
        self._pool.shutdown()

    def _release(self) -> None:
        unsent = [item.delivery_id for waiting in self._waiting.values() for item in waiting]
        self._waiting.clear()
        if unsent:
            self._held -= len(unsent)
            try:
                WebhookDelivery.objects.filter(pk__in=unsent, claimed_by=self.owner).update(
                    in_flight_until=None, claimed_by=""
                )
            except Exception:  # the database is away: they lapse and are claimed again later
                logger.exception("held webhook deliveries not released")

    def _record(self, results: list[Result]) -> None:
        # The database may be away for a moment: keep the results until it is back (their claims lapse
        # meanwhile, so some deliveries may be sent twice: at least once, as the contract says).
        while True:
            try:
                results_record(results)
                return
            except Exception:
                logger.exception("webhook results not recorded; trying again")
                connection.close()
                time.sleep(1.0)
