"""`GET /api/v1/gateways`: each gateway's health, breaker state and routes (CONTRACT §6)."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.schema import AUTHENTICATED_ERRORS

from .breaker import BreakerState, breaker_state
from .methods import PaymentMethod
from .models import Country, Gateway, GatewayRoute


class RouteOutput(serializers.Serializer):
    """A route of a gateway: the country it serves and how. Never its scores or sample counts: they
    are made of every merchant's traffic (operators see them in the admin)."""

    country = serializers.CharField(source="country.code")
    priority = serializers.IntegerField()
    currencies = serializers.SerializerMethodField()
    transaction_types = serializers.ListField(child=serializers.CharField())
    payment_methods = serializers.ListField(
        child=serializers.ChoiceField(choices=PaymentMethod.choices),
        help_text="The payment methods the route serves; empty: every method, and details without a method.",
    )
    active = serializers.BooleanField(source="is_active")
    strategy = serializers.ChoiceField(
        source="country.routing_strategy",
        choices=Country.RoutingStrategy.choices,
        help_text="The country's routing strategy.",
    )

    def get_currencies(self, route: GatewayRoute) -> list[str]:
        return list(route.currencies or [route.country.currency])


class GatewayListApi(APIView):
    xml_root_name = "gateways"

    class GatewayOutput(serializers.Serializer):
        code = serializers.CharField()
        name = serializers.CharField()
        data_format = serializers.CharField()
        active = serializers.BooleanField(source="is_active")
        health_status = serializers.ChoiceField(choices=Gateway.Health.choices)
        breaker_state = serializers.SerializerMethodField()
        last_checked_at = serializers.DateTimeField(allow_null=True)
        routes = serializers.SerializerMethodField()

        def get_breaker_state(self, gateway: Gateway) -> str:
            return str(breaker_state(gateway.pk))

        @extend_schema_field(RouteOutput(many=True))
        def get_routes(self, gateway: Gateway) -> list[dict[str, Any]]:
            # many=True makes a ListSerializer, whose data is a list (the stubs type it as the child).
            return cast("list[dict[str, Any]]", RouteOutput(gateway.routes.all(), many=True).data)

    @extend_schema(
        operation_id="gateway_list",
        responses={
            200: inline_serializer(name="GatewayList", fields={"gateways": GatewayOutput(many=True)}),
            **AUTHENTICATED_ERRORS,
        },
        tags=["gateways"],
        description="Gateways with health, circuit-breaker state "
        f"({', '.join(state.value for state in BreakerState)}) and routes by country.",
    )
    def get(self, request: Request) -> Response:
        gateways = Gateway.objects.order_by("code").prefetch_related(
            Prefetch(
                "routes", queryset=GatewayRoute.objects.select_related("country").order_by("country__code", "priority")
            )
        )
        return Response({"gateways": self.GatewayOutput(gateways, many=True).data})
