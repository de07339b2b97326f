"""Webhook endpoints, and delivering events to them: outbox rows, signed POSTs, retries on a schedule.

A delivery row is written with its event, in the database transaction of the status change
(`deliveries_create_for_event`, connected to `payments.signals.event_recorded`): an event
that committed has its deliveries, and nothing else is needed for them to be sent. The
dispatcher (webhooks.dispatcher, its own process) finds due rows, claims them within each
endpoint's concurrency, POSTs them signed (webhooks.signing) and records what came back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from core.errors import ValidationFailed
from core.localcache import LocalCache
from core.netguard import AddressPolicy, BlockedAddress
from core.text import is_storable
from payments.models import ApiClient, Event, EventType

from .errors import EndpointLimitReached
from .models import ENDPOINTS_CACHE, WebhookDelivery, WebhookEndpoint
from .signing import new_secret

logger = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
MAX_PATTERNS = 20

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


_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_GROUP = "[0-9A-Fa-f]{1,4}"
# IPv6 in the forms every parser takes: all eight groups, or groups before a "::" and at most one after.
_IPV6 = f"\\[(({_GROUP}:){{7}}{_GROUP}|({_GROUP}:){{1,6}}:({_GROUP})?|::({_GROUP})?)\\]"
# What an endpoint URL may look like: one pattern for the schema (webhooks.apis) and the check
# below, so that what one allows the other accepts. A name with a top-level domain, an IPv4 or
# IPv6 address or localhost; a port (1-65535); a path and a query of URL characters, a % only as
# an escape (so every match is a URI). Every match also passes Django's URLValidator, which stays
# as a second opinion.
WEBHOOK_URL_PATTERN = (
    f"^https?://(({_LABEL}\\.){{1,8}}[A-Za-z]{{2,63}}|{_OCTET}(\\.{_OCTET}){{3}}|{_IPV6}|localhost)"
    "(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    "(/([A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?"
    "(\\?([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
)
_WEBHOOK_URL = re.compile(WEBHOOK_URL_PATTERN[:-1] + "\\Z")


def webhook_url_check(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise ValidationFailed("A URL is required.", fields={"url": ["A URL is required."]})
    if len(url) > MAX_URL_LENGTH or not is_storable(url):
        raise ValidationFailed("The URL is not valid.", fields={"url": [f"At most {MAX_URL_LENGTH} characters."]})
    try:
        if not _WEBHOOK_URL.match(url):
            raise DjangoValidationError("outside the pattern")
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
    secret = new_secret()
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
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret", "updated_at"])
    return str(endpoint.secret)


def _active_endpoints(client_id: int) -> tuple[WebhookEndpoint, ...]:
    def load() -> tuple[WebhookEndpoint, ...]:
        return tuple(WebhookEndpoint.objects.filter(client_id=client_id, active=True))

    return _endpoints.get(client_id, load)


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
