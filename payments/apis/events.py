"""Merchant API: the client's event feed and one event (CONTRACT §8)."""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound
from core.schema import AUTHENTICATED_ERRORS, ERROR_RESPONSE
from core.serializers import QueryFilters

from ..auth import client_of
from ..models import EventType
from ..representations import event_representation
from ..selectors import event_feed, event_get
from .refunds import RefundOutput
from .transactions import TransactionOutput


# The answer's shape, for the schema only: `event_representation` writes it.
class EventOutput(serializers.Serializer):
    id = serializers.CharField(help_text="`evt_` and 32 hex digits.")
    type = serializers.ChoiceField(choices=EventType.choices)
    created_at = serializers.DateTimeField()
    data = inline_serializer(  # type: ignore[assignment]  # a nested serializer named `data`, as the contract has it
        name="EventData",
        fields={
            "object": PolymorphicProxySerializer(
                component_name="EventObject",
                serializers=[TransactionOutput, RefundOutput],
                resource_type_field_name=None,
                help_text="The transaction (transaction.*) or the refund (refund.*) right after the change.",
            )
        },
    )


_EVENT_ID_PATTERN = "^evt_[0-9a-f]{32}$"


class EventListApi(APIView):
    xml_root_name = "events"

    class FilterInput(QueryFilters):
        after = serializers.RegexField(
            _EVENT_ID_PATTERN, required=False, help_text="Events after this one (an id from this feed)."
        )
        limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
        type = serializers.ChoiceField(choices=EventType.choices, required=False)
        transaction = serializers.UUIDField(required=False, help_text="Only this transaction's events.")

    @extend_schema(
        operation_id="event_list",
        parameters=[FilterInput],
        responses={
            200: inline_serializer(
                name="EventPage",
                fields={
                    "results": EventOutput(many=True),
                    "has_more": serializers.BooleanField(
                        help_text="More events are visible now: ask again with `after` = the last id."
                    ),
                    "next": serializers.URLField(allow_null=True, help_text="The next page's URL, if `has_more`."),
                },
            ),
            400: OpenApiResponse(ERROR_RESPONSE, description="Unknown or invalid filter"),
            404: OpenApiResponse(ERROR_RESPONSE, description="`after` names no event of this client"),
            **AUTHENTICATED_ERRORS,
        },
        tags=["events"],
        description="The client's events, oldest first. Paging forward with `after` never skips an event, "
        "even when concurrent writers commit out of order: an event appears once every older writer has finished.",
    )
    def get(self, request: Request) -> Response:
        params = self.FilterInput.read(request.query_params)
        client = client_of(request)
        after = None
        if params.get("after"):
            after = event_get(client=client, event_id=params["after"])
            if after is None:
                raise NotFound("No such event (after).", fields={"after": ["No such event."]})
        events, has_more = event_feed(
            client=client,
            after=after,
            limit=params["limit"],
            type=params.get("type"),
            transaction_id=params.get("transaction"),
        )
        next_url = None
        if has_more:
            query = request.query_params.copy()
            query["after"] = events[-1].public_id
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response({"results": [event_representation(e) for e in events], "has_more": has_more, "next": next_url})


class EventDetailApi(APIView):
    xml_root_name = "event"

    @extend_schema(
        operation_id="event_retrieve",
        parameters=[OpenApiParameter("event_id", {"type": "string"}, OpenApiParameter.PATH)],
        responses={
            200: EventOutput,
            404: OpenApiResponse(ERROR_RESPONSE, description="No such event"),
            **AUTHENTICATED_ERRORS,
        },
        tags=["events"],
    )
    def get(self, request: Request, event_id: str) -> Response:
        event = event_get(client=client_of(request), event_id=event_id)
        if event is None:
            raise NotFound("No such event.")
        return Response(event_representation(event))
