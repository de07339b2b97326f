"""Webhook endpoints, and delivering events to them: outbox rows, signed POSTs, retries on a schedule.

A delivery row is written with its event, in the database transaction of the status change
(`deliveries_create_for_event`, connected to `payments.signals.event_recorded`): an event
that committed has its deliveries, even if the broker was down at that moment. The first try
is published once that transaction commits; later ones when their delay comes (a countdown
for short delays, the sweep for long ones and for anything a lost publish left behind).

A try claims its delivery under the row lock (`in_flight_until`), checks the address again
(DNS re-binding), POSTs outside any database transaction, and records what came back. An
endpoint has at most PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY tries in flight, so one that hangs
holds only that many worker threads, and never the payment pipeline, which has its own queue.
A delivery that finds its endpoint at that limit waits for a slot (`waiting_since`): the next
try of that endpoint to end hands its slot on by publishing the one that waited longest (the
sweep, should every such try die, is the backstop). No task polls a busy endpoint.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from callbacks.signing import signature_header
from core.errors import ValidationFailed
from core.localcache import LocalCache
from core.metrics import WEBHOOK_DELIVERIES
from core.netguard import AddressPolicy, BlockedAddress
from core.text import is_storable
from gateways.adapters.http import GatewayTransportError, HttpClient
from payments.models import ApiClient, Event, EventType
from payments.representations import event_representation

from .errors import EndpointLimitReached
from .models import ENDPOINTS_CACHE, WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint

logger = logging.getLogger(__name__)

DELIVER_TASK = "webhooks.deliver"
SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2048
MAX_PATTERNS = 20
# A try holds its delivery this long past the request timeout before it is presumed dead (a killed
# worker's claims keep counting against the endpoint's concurrency until then: keep it short).
_IN_FLIGHT_GRACE_SECONDS = 5.0
# A delivery that found its endpoint at its concurrency limit waits for a slot; should no try of that
# endpoint hand it one (they all died), the sweep publishes it again once this has passed.
_SLOT_WAIT_BACKSTOP_SECONDS = 15.0
# Delays up to this are a countdown on the broker; longer ones wait for the sweep.
_COUNTDOWN_MAX_SECONDS = 300.0
# What the sweep leaves alone after republishing a delivery, so the next sweep does not repeat it.
_SWEEP_HOLD_SECONDS = 60.0
_SWEEP_BATCH = 500

_endpoints: LocalCache[tuple[WebhookEndpoint, ...]] = LocalCache(ENDPOINTS_CACHE)


# --- endpoints ---------------------------------------------------------------------------------


URL_REFUSED = "Not allowed: use https:// to a public host name, on an allowed port (443)."


def webhook_address_policy() -> AddressPolicy:
    """With DEBUG off: https to public addresses only, unless PAYGATE_WEBHOOK_ALLOW_PRIVATE (development)."""
    lifted = settings.DEBUG or settings.PAYGATE_WEBHOOK_ALLOW_PRIVATE
    return AddressPolicy(
        enforce=not lifted, allowed_ports=frozenset(int(port) for port in settings.PAYGATE_WEBHOOK_ALLOWED_PORTS)
    )


def event_patterns() -> list[str]:
    """What an endpoint may subscribe to: a type, every type of an object ("refund.*"), or "*"."""
    prefixes = sorted({value.split(".", 1)[0] for value in EventType.values})
    return ["*", *(f"{prefix}.*" for prefix in prefixes), *EventType.values]


def webhook_url_check(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise ValidationFailed("A URL is required.", fields={"url": ["A URL is required."]})
    if len(url) > MAX_URL_LENGTH or not is_storable(url):
        raise ValidationFailed("The URL is not valid.", fields={"url": [f"At most {MAX_URL_LENGTH} characters."]})
    try:
        URLValidator(schemes=["http", "https"])(url)
    except DjangoValidationError:
        raise ValidationFailed("The URL is not valid.", fields={"url": ["Enter a valid http(s) URL."]}) from None
    try:
        webhook_address_policy().check_url(url)
    except BlockedAddress as exc:
        # One answer for every refusal: naming the address a host resolves to, or telling "does
        # not resolve" from "non-public", would map Paygate's internal network for the sender.
        logger.info("webhook URL refused: %s", exc)
        raise ValidationFailed(URL_REFUSED, fields={"url": [URL_REFUSED]}) from None
    return url


def webhook_events_check(events: Any) -> list[str]:
    allowed = set(event_patterns())
    if not isinstance(events, list) or not events or len(events) > MAX_PATTERNS:
        raise ValidationFailed(
            "events must be a list of 1 to 20 event types.", fields={"events": ["1 to 20 event types."]}
        )
    unknown = [item for item in events if not isinstance(item, str) or item not in allowed]
    if unknown:
        raise ValidationFailed(
            "Unknown event type.", fields={"events": [f"Unknown: {item!r}." for item in unknown][:MAX_PATTERNS]}
        )
    return list(dict.fromkeys(events))


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str


def webhook_endpoint_create(*, client: ApiClient, url: Any, events: Any, active: bool = True) -> CreatedEndpoint:
    """A new endpoint with a new signing secret (returned here, once). At most PAYGATE_WEBHOOK_MAX_ENDPOINTS."""
    url = webhook_url_check(url)
    events = webhook_events_check(events)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        # The client's row serialises concurrent creations, so the cap holds under races.
        ApiClient.objects.select_for_update().filter(pk=client.pk).exists()
        if WebhookEndpoint.objects.live().filter(client=client).count() >= settings.PAYGATE_WEBHOOK_MAX_ENDPOINTS:
            raise EndpointLimitReached(
                f"A client may have at most {settings.PAYGATE_WEBHOOK_MAX_ENDPOINTS} webhook endpoints.",
                fields={"url": ["Endpoint limit reached."]},
            )
        endpoint = WebhookEndpoint.objects.create(client=client, url=url, events=events, active=active, secret=secret)
    logger.info("webhook endpoint created", extra={"endpoint": str(endpoint.pk)})
    return CreatedEndpoint(endpoint=endpoint, secret=secret)


def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, url: Any = None, events: Any = None, active: bool | None = None
) -> WebhookEndpoint:
    changed = []
    if url is not None:
        endpoint.url = webhook_url_check(url)
        changed.append("url")
    if events is not None:
        endpoint.events = webhook_events_check(events)
        changed.append("events")
    if active is not None:
        endpoint.active = active
        changed.append("active")
    if changed:
        endpoint.save(update_fields=[*changed, "updated_at"])
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Nothing more is sent to it and the API no longer shows it; its delivery log stays.

    The row stays (`deleted_at`): a status change committing at this moment may still write a
    delivery for it (its process read the endpoints before this change reached it), and a row
    that had gone would make that change fail on the foreign key. Deliveries still pending end
    as failed (`endpoint_deleted`) when their turn comes.
    """
    endpoint.active = False
    endpoint.deleted_at = timezone.now()
    endpoint.save(update_fields=["active", "deleted_at", "updated_at"])
    logger.info("webhook endpoint deleted", extra={"endpoint": str(endpoint.pk)})


def webhook_secret_rotate(*, endpoint: WebhookEndpoint) -> str:
    """A new signing secret (for the admin); the old one stops signing at once."""
    endpoint.secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    endpoint.save(update_fields=["secret", "updated_at"])
    return str(endpoint.secret)


def _active_endpoints(client_id: int) -> tuple[WebhookEndpoint, ...]:
    return _endpoints.get(client_id, lambda: tuple(WebhookEndpoint.objects.filter(client_id=client_id, active=True)))


# --- deliveries --------------------------------------------------------------------------------


def deliveries_create_for_event(sender: object = None, *, event: Event, **_: object) -> list[WebhookDelivery]:
    """The event's outbox rows, one per matching endpoint, in the event's database transaction.

    A client without endpoints costs no statement (its endpoints are cached in the process).
    """
    endpoints = [endpoint for endpoint in _active_endpoints(event.client_id) if endpoint.matches(event.type)]
    if not endpoints:
        return []
    return _deliveries_create(event, endpoints)


def _deliveries_create(event: Event, endpoints: Sequence[WebhookEndpoint]) -> list[WebhookDelivery]:
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(event=event, endpoint=endpoint, next_attempt_at=now) for endpoint in endpoints]
    )
    published = [(delivery.pk, 0) for delivery in deliveries]
    transaction.on_commit(lambda: deliveries_publish(published), robust=True)
    return deliveries


def event_redeliver(*, event: Event) -> list[WebhookDelivery]:
    """Deliver an event again to every active endpoint of its client that subscribes to its type."""
    endpoints = [endpoint for endpoint in _active_endpoints(event.client_id) if endpoint.matches(event.type)]
    with transaction.atomic():
        deliveries = _deliveries_create(event, endpoints) if endpoints else []
    logger.info("event redelivered to %d endpoints", len(deliveries), extra={"event": event.public_id})
    return deliveries


def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery | None:
    """The same event to the same endpoint once more (the admin's action on a failed delivery);
    None if the endpoint was deleted."""
    if delivery.endpoint.deleted_at is not None:
        return None
    with transaction.atomic():
        return _deliveries_create(delivery.event, [delivery.endpoint])[0]


def deliveries_publish(items: Iterable[tuple[int, int]], *, countdown: float | None = None) -> None:
    """Queue tries of (delivery id, attempts made so far). A failed publish is logged: the sweep retries."""
    task = current_app.tasks[DELIVER_TASK]
    for delivery_id, attempt_count in items:
        try:
            if countdown is None:
                task.apply_async(args=(delivery_id, attempt_count))
            else:
                task.apply_async(args=(delivery_id, attempt_count), countdown=countdown)
        except Exception:
            logger.exception("could not publish a webhook delivery; the sweep will", extra={"delivery": delivery_id})
            return


def retry_schedule() -> list[float]:
    return [float(item) for item in str(settings.PAYGATE_WEBHOOK_RETRY_SCHEDULE).split(",") if item.strip()]


_http: HttpClient | None = None


def _client() -> HttpClient:
    global _http
    if _http is None:
        # Nothing of the answer is kept but its status: a small cap on what is read of it.
        _http = HttpClient(pool_maxsize=16, max_reply_bytes=64 * 1024, address_policy=webhook_address_policy)
    return _http


@dataclass(frozen=True, slots=True)
class _Claim:
    delivery: WebhookDelivery
    endpoint: WebhookEndpoint
    event: Event


def _claim(delivery_id: int, attempt_count: int, now: datetime) -> _Claim | None:
    """Take a due delivery for one try, under its row lock; None if it is not this task's to try.

    First come, first served per endpoint: if deliveries of the endpoint wait for a slot, the one
    that has waited longest takes the free slot and this one waits behind it. So under a burst
    above an endpoint's pace, a new event never overtakes one that waits.
    """
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint", "event")
            .filter(pk=delivery_id)
            .first()
        )
        if (
            delivery is None
            or delivery.status != WebhookDelivery.Status.PENDING
            or delivery.attempt_count != attempt_count  # a duplicate of a try already made
            or (delivery.in_flight_until is not None and delivery.in_flight_until > now)
        ):
            return None
        endpoint = delivery.endpoint
        if endpoint.deleted_at is not None or not endpoint.active:
            error = "endpoint_deleted" if endpoint.deleted_at is not None else "endpoint_disabled"
            _record(delivery, now=now, status_code=None, error=error, duration_ms=0.0, final=True)
            return None
        # Claims of one endpoint take turns on its row, so that two of them never both see a free
        # slot. (FOR NO KEY UPDATE: a status change writing a delivery for the endpoint only
        # needs a KEY SHARE lock on it for its foreign key, and is never held up by this.)
        WebhookEndpoint.objects.select_for_update(no_key=True).filter(pk=endpoint.pk).exists()
        busy = (
            WebhookDelivery.objects.filter(
                endpoint_id=endpoint.pk, status=WebhookDelivery.Status.PENDING, in_flight_until__gt=now
            )
            .exclude(pk=delivery.pk)
            .count()
        )
        if busy >= settings.PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY:
            # Waits for a slot: the next try of this endpoint to end publishes it (`deliveries_waiting_for_slot`).
            _wait_for_slot(delivery, now)
            return None
        chosen = delivery
        waiter = (
            WebhookDelivery.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("event")
            .filter(endpoint_id=endpoint.pk, status=WebhookDelivery.Status.PENDING, waiting_since__isnull=False)
            .exclude(pk=delivery.pk)
            .exclude(in_flight_until__gt=now)
            .order_by("waiting_since", "pk")
            .first()
        )
        if (
            waiter is not None
            and waiter.waiting_since is not None
            and (delivery.waiting_since is None or waiter.waiting_since < delivery.waiting_since)
        ):
            _wait_for_slot(delivery, now)
            chosen = waiter  # its own task, if still queued, then finds it taken and does nothing
        chosen.waiting_since = None
        chosen.in_flight_until = now + timedelta(
            seconds=settings.PAYGATE_WEBHOOK_TIMEOUT_SECONDS + _IN_FLIGHT_GRACE_SECONDS
        )
        chosen.save(update_fields=["waiting_since", "in_flight_until", "updated_at"])
        return _Claim(delivery=chosen, endpoint=endpoint, event=chosen.event)


def _wait_for_slot(delivery: WebhookDelivery, now: datetime) -> None:
    delivery.waiting_since = delivery.waiting_since or now
    delivery.next_attempt_at = now + timedelta(seconds=_SLOT_WAIT_BACKSTOP_SECONDS)
    delivery.save(update_fields=["waiting_since", "next_attempt_at", "updated_at"])


def webhook_deliver(*, delivery_id: int, attempt_count: int) -> None:
    """One try of a delivery: claim it, POST the signed event, record the answer, schedule what follows."""
    claim = _claim(delivery_id, attempt_count, timezone.now())
    if claim is None:
        return
    body = json.dumps(event_representation(claim.event), separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "Paygate-Event-Id": claim.event.public_id,
        "Paygate-Signature": signature_header(secret=claim.endpoint.secret, body=body),
    }
    timeout = float(settings.PAYGATE_WEBHOOK_TIMEOUT_SECONDS)
    started = time.perf_counter()
    status_code: int | None = None
    error = ""
    try:
        reply = _client().send(
            "POST",
            claim.endpoint.url,
            headers=headers,
            data=body,
            connect_timeout=min(timeout, 5.0),
            read_timeout=timeout,
            gateway_code="webhook",
        )
        status_code = reply.status
        if not 200 <= status_code < 300:
            error = f"http_{status_code}"
    except GatewayTransportError as exc:
        error = exc.code
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    if not error and duration_ms > timeout * 1000:
        error = "timeout"  # answered, but later than the contract's window
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=claim.delivery.pk)
        result = _record(
            delivery, now=timezone.now(), status_code=status_code, error=error, duration_ms=duration_ms, final=False
        )
    logger.info(
        "webhook delivery %s",
        result,
        extra={"event": claim.event.public_id, "endpoint": str(claim.endpoint.pk), "status_code": status_code},
    )
    deliveries_publish(deliveries_waiting_for_slot(endpoint_id=claim.endpoint.pk))


def deliveries_waiting_for_slot(*, endpoint_id: Any, now: datetime | None = None) -> list[tuple[int, int]]:
    """The endpoint's delivery that has waited longest for a slot, if one waits: [(id, attempts made)].

    A try that ends publishes it (`webhook_deliver`), so the slot it frees goes to that delivery.
    If two ending tries pick the same one, the second publish finds it taken and does nothing.
    """
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(
            endpoint_id=endpoint_id, status=WebhookDelivery.Status.PENDING, waiting_since__isnull=False
        )
        .exclude(in_flight_until__gt=now)
        .order_by("waiting_since", "pk")
        .values_list("pk", "attempt_count")[:1]
    )


def _record(
    delivery: WebhookDelivery, *, now: datetime, status_code: int | None, error: str, duration_ms: float, final: bool
) -> str:
    """Write a try and its consequence on the locked delivery; return the metric's result."""
    WebhookDeliveryAttempt.objects.create(
        delivery=delivery, status_code=status_code, error=error[:255], duration_ms=duration_ms
    )
    delivery.attempt_count += 1
    delivery.in_flight_until = None
    schedule = retry_schedule()
    result: str
    if not error:
        result = delivery.status = WebhookDelivery.Status.SUCCEEDED
        delivery.finished_at = now
        delivery.next_attempt_at = None
    elif final or delivery.attempt_count > len(schedule):
        result = delivery.status = WebhookDelivery.Status.FAILED
        delivery.finished_at = now
        delivery.next_attempt_at = None
    else:
        result = "retry"
        delay = schedule[delivery.attempt_count - 1]
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        if delay <= _COUNTDOWN_MAX_SECONDS:
            item = [(delivery.pk, delivery.attempt_count)]
            transaction.on_commit(lambda: deliveries_publish(item, countdown=delay))
    delivery.save(
        update_fields=["status", "attempt_count", "in_flight_until", "next_attempt_at", "finished_at", "updated_at"]
    )
    transaction.on_commit(lambda: WEBHOOK_DELIVERIES.labels(result=result).inc())
    return result


def deliveries_sweep(*, now: datetime | None = None) -> int:
    """Publish pending deliveries that are due and not in flight: long retries, and lost publishes."""
    now = now or timezone.now()
    with transaction.atomic():
        # Rows another sweep is publishing are skipped: two sweeps never publish the same batch.
        due = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
            .exclude(in_flight_until__gt=now)
            .order_by("next_attempt_at")
            .values_list("pk", "attempt_count")[:_SWEEP_BATCH]
        )
        WebhookDelivery.objects.filter(pk__in=[pk for pk, _ in due]).update(
            next_attempt_at=now + timedelta(seconds=_SWEEP_HOLD_SECONDS)
        )
    deliveries_publish(due)
    if due:
        logger.info("webhook sweep published %d deliveries", len(due))
    return len(due)
