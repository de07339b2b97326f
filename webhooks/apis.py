"""Merchant API: webhook endpoints, and the deliveries of an event (CONTRACT §8)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound
from core.parsers import StrictJSONParser
from core.schema import AUTHENTICATED_ERRORS, ERROR_RESPONSE, DescribedBody
from core.serializers import StrictInput
from core.throttling import ActionLimit
from payments.auth import client_of
from payments.representations import iso
from payments.selectors import event_get

from .models import WebhookDeliveryAttempt, WebhookEndpoint
from .selectors import event_delivery_attempts, webhook_endpoint_get, webhook_endpoint_list
from .services import (
    MAX_URL_LENGTH,
    WEBHOOK_URL_PATTERN,
    event_patterns,
    event_redeliver,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
)

# The URL check's own pattern: what the schema allows is accepted (with DEBUG off, only if it is
# https on an allowed port and resolves to a public address), and what it forbids is refused.
_URL_SCHEMA = {
    "type": "string",
    "maxLength": MAX_URL_LENGTH,
    "pattern": WEBHOOK_URL_PATTERN,
    "description": "https:// (with DEBUG off) to a host that resolves to public addresses only.",
}
_EVENTS_SCHEMA = {
    "type": "array",
    "items": {"type": "string", "enum": event_patterns()},
    "minItems": 1,
    "maxItems": 20,
    "description": 'Event types, "transaction.*" / "refund.*" for every type of an object, or "*" for all.',
}


# The answers' shapes, for the schema only: `endpoint_representation` and `attempt_representation` write them.
class EndpointOutput(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


def endpoint_representation(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": str(endpoint.pk),
        "url": endpoint.url,
        "events": list(endpoint.events),
        "active": endpoint.active,
        "created_at": iso(endpoint.created_at),
    }


class EndpointCreatedOutput(EndpointOutput):
    secret = serializers.CharField(help_text="`whsec_…`: signs every delivery. Shown in this answer only.")


class EndpointInput(StrictInput):
    url = serializers.CharField(max_length=MAX_URL_LENGTH, help_text="https:// (with DEBUG off), a public address.")
    events = serializers.JSONField()
    active = serializers.BooleanField(required=False, default=True)

    def strict_body(self, data: Any) -> dict[str, Any]:
        body = super().strict_body(data)
        if "active" in body and not isinstance(body["active"], bool):
            raise serializers.ValidationError({"active": ["Must be true or false."]})
        if "url" in body and not isinstance(body["url"], str):
            raise serializers.ValidationError({"url": ["Must be a string."]})
        return body


class EndpointPatchInput(EndpointInput):
    url = serializers.CharField(max_length=MAX_URL_LENGTH, required=False)
    events = serializers.JSONField(required=False)
    active = serializers.BooleanField(required=False)


class WebhookEndpointCreate(DescribedBody):
    @classmethod
    def openapi_schema(cls) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "url": _URL_SCHEMA,
                "events": _EVENTS_SCHEMA,
                "active": {"type": "boolean", "default": True},
            },
            "required": ["url", "events"],
            "additionalProperties": False,
        }


class WebhookEndpointUpdate(DescribedBody):
    @classmethod
    def openapi_schema(cls) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"url": _URL_SCHEMA, "events": _EVENTS_SCHEMA, "active": {"type": "boolean"}},
            "additionalProperties": False,
        }


_ENDPOINT_ID = OpenApiParameter("endpoint_id", {"type": "string", "format": "uuid"}, OpenApiParameter.PATH)
_EVENT_ID = OpenApiParameter("event_id", {"type": "string"}, OpenApiParameter.PATH)


class WebhookEndpointListApi(APIView):
    parser_classes = [StrictJSONParser]
    xml_root_name = "webhook_endpoints"

    @extend_schema(
        operation_id="webhook_endpoint_list",
        responses={
            200: inline_serializer(name="WebhookEndpointList", fields={"results": EndpointOutput(many=True)}),
            **AUTHENTICATED_ERRORS,
        },
        tags=["webhooks"],
    )
    def get(self, request: Request) -> Response:
        endpoints = webhook_endpoint_list(client=client_of(request))
        return Response({"results": [endpoint_representation(e) for e in endpoints]})

    @extend_schema(
        operation_id="webhook_endpoint_create",
        request={"application/json": WebhookEndpointCreate},
        responses={
            201: EndpointCreatedOutput,
            400: OpenApiResponse(ERROR_RESPONSE, description="Invalid URL or event types"),
            **AUTHENTICATED_ERRORS,
            415: OpenApiResponse(ERROR_RESPONSE, description="Unsupported media type (JSON only)"),
            422: OpenApiResponse(ERROR_RESPONSE, description="endpoint_limit_reached"),
        },
        tags=["webhooks"],
    )
    def post(self, request: Request) -> Response:
        serializer = EndpointInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        created = webhook_endpoint_create(
            client=client_of(request), url=data["url"], events=data["events"], active=data["active"]
        )
        body = {**endpoint_representation(created.endpoint), "secret": created.secret}
        return Response(
            body,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"{request.path.rstrip('/')}/{created.endpoint.pk}"},
        )


class WebhookEndpointDetailApi(APIView):
    parser_classes = [StrictJSONParser]
    xml_root_name = "webhook_endpoint"

    def _endpoint(self, request: Request, endpoint_id: str) -> WebhookEndpoint:
        endpoint = webhook_endpoint_get(client=client_of(request), endpoint_id=endpoint_id)
        if endpoint is None:
            raise NotFound("No such webhook endpoint.")
        return endpoint

    @extend_schema(
        operation_id="webhook_endpoint_retrieve",
        parameters=[_ENDPOINT_ID],
        responses={200: EndpointOutput, 404: OpenApiResponse(ERROR_RESPONSE), **AUTHENTICATED_ERRORS},
        tags=["webhooks"],
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        return Response(endpoint_representation(self._endpoint(request, endpoint_id)))

    @extend_schema(
        operation_id="webhook_endpoint_update",
        parameters=[_ENDPOINT_ID],
        request={"application/json": WebhookEndpointUpdate},
        responses={
            200: EndpointOutput,
            400: OpenApiResponse(ERROR_RESPONSE, description="Invalid URL or event types"),
            404: OpenApiResponse(ERROR_RESPONSE),
            **AUTHENTICATED_ERRORS,
            415: OpenApiResponse(ERROR_RESPONSE, description="Unsupported media type (JSON only)"),
        },
        tags=["webhooks"],
    )
    def patch(self, request: Request, endpoint_id: str) -> Response:
        endpoint = self._endpoint(request, endpoint_id)
        serializer = EndpointPatchInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint = webhook_endpoint_update(
            endpoint=endpoint, url=data.get("url"), events=data.get("events"), active=data.get("active")
        )
        return Response(endpoint_representation(endpoint))

    @extend_schema(
        operation_id="webhook_endpoint_destroy",
        parameters=[_ENDPOINT_ID],
        responses={204: None, 404: OpenApiResponse(ERROR_RESPONSE), **AUTHENTICATED_ERRORS},
        tags=["webhooks"],
    )
    def delete(self, request: Request, endpoint_id: str) -> Response:
        webhook_endpoint_delete(endpoint=self._endpoint(request, endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# What a merchant is told of a try. The stored error (connection refused, connect timeout,
# address blocked, …) stays for operators in the admin: told to the merchant, it and the time a
# failed connection took would let anyone with an endpoint scan ports from Paygate's address.
PUBLIC_ERRORS = ("no_answer", "timeout", "endpoint_deleted", "endpoint_disabled")


def public_error(attempt: WebhookDeliveryAttempt) -> str | None:
    """`http_<code>` for a non-2xx answer, `timeout` for an answer after the window, `no_answer`
    for every try that got no HTTP answer, whatever the reason; null on success."""
    error = attempt.error
    if not error:
        return None
    if attempt.status_code is not None:
        return error if error.startswith("http_") else "timeout"
    if error in ("endpoint_deleted", "endpoint_disabled"):
        return error
    return "no_answer"


class DeliveryAttemptOutput(serializers.Serializer):
    endpoint = serializers.UUIDField(help_text="The webhook endpoint's id.")
    url = serializers.URLField(help_text="Where it was sent.")
    status_code = serializers.IntegerField(allow_null=True, help_text="null when no HTTP answer came.")
    error = serializers.CharField(
        allow_null=True,
        help_text="Why it failed; null on success: `http_<code>` (a non-2xx answer), `timeout` "
        "(answered after the window), `no_answer` (no HTTP answer, whatever the reason), "
        "`endpoint_deleted` or `endpoint_disabled`.",
    )
    duration_ms = serializers.FloatField(
        help_text="Milliseconds until the endpoint answered, whole; 0 when no HTTP answer came."
    )
    created_at = serializers.DateTimeField()


def attempt_representation(attempt: WebhookDeliveryAttempt) -> dict[str, Any]:
    endpoint = attempt.delivery.endpoint
    answered = attempt.status_code is not None
    return {
        "endpoint": str(endpoint.pk),
        "url": endpoint.url,
        "status_code": attempt.status_code,
        "error": public_error(attempt),
        "duration_ms": float(round(attempt.duration_ms)) if answered else 0.0,
        "created_at": iso(attempt.created_at),
    }


def _event(request: Request, event_id: str) -> Any:
    event = event_get(client=client_of(request), event_id=event_id)
    if event is None:
        raise NotFound("No such event.")
    return event


class EventDeliveryListApi(APIView):
    xml_root_name = "deliveries"

    @extend_schema(
        operation_id="event_deliveries_list",
        parameters=[_EVENT_ID],
        responses={
            200: inline_serializer(name="EventDeliveryAttempts", fields={"results": DeliveryAttemptOutput(many=True)}),
            404: OpenApiResponse(ERROR_RESPONSE, description="No such event"),
            **AUTHENTICATED_ERRORS,
        },
        tags=["events"],
        description="Every try to deliver this event, oldest first.",
    )
    def get(self, request: Request, event_id: str) -> Response:
        attempts = event_delivery_attempts(event=_event(request, event_id))
        return Response({"results": [attempt_representation(a) for a in attempts]})


_REDELIVER_PER_EVENT = ActionLimit("redeliver_event", setting="PAYGATE_REDELIVER_RATE_PER_EVENT")
_REDELIVER_PER_CLIENT = ActionLimit("redeliver_client", setting="PAYGATE_REDELIVER_RATE_PER_CLIENT")


class EventRedeliverApi(APIView):
    xml_root_name = "redelivery"

    @extend_schema(
        operation_id="event_redeliver",
        parameters=[_EVENT_ID],
        request=None,
        responses={
            202: inline_serializer(
                name="EventRedelivery",
                fields={
                    "event": serializers.CharField(),
                    "endpoints": serializers.ListField(child=serializers.UUIDField()),
                },
            ),
            404: OpenApiResponse(ERROR_RESPONSE, description="No such event"),
            **AUTHENTICATED_ERRORS,
        },
        tags=["events"],
        description=(
            "Deliver the event again to every active endpoint that subscribes to its type. "
            "Limited per event (PAYGATE_REDELIVER_RATE_PER_EVENT) and per client "
            "(PAYGATE_REDELIVER_RATE_PER_CLIENT): over either, 429 with Retry-After."
        ),
    )
    def post(self, request: Request, event_id: str) -> Response:
        event = _event(request, event_id)
        # Each redelivery is a POST to every endpoint: a client may not turn them into a flood.
        for limit, scope in ((_REDELIVER_PER_CLIENT, str(event.client_id)), (_REDELIVER_PER_EVENT, event.public_id)):
            wait = limit.hit(scope)
            if wait is not None:
                raise exceptions.Throttled(wait)
        deliveries = event_redeliver(event=event)
        return Response(
            {"event": event.public_id, "endpoints": [str(d.endpoint_id) for d in deliveries]},
            status=status.HTTP_202_ACCEPTED,
        )
