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
from .models import TRANSACTION_TYPES, Country, Gateway, GatewayRoute
from .selectors import route_score_lines


class RouteScoreOutput(serializers.Serializer):
    """One route's current score for one currency and transaction type, as the success_rate strategy sees it."""

    currency = serializers.CharField()
    type = serializers.ChoiceField(source="transaction_type", choices=list(TRANSACTION_TYPES))
    score = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        help_text="What the success_rate strategy ranks the route by now: its success rate over the window, "
        "or the country's default score while it has fewer outcomes than the minimum.",
    )
    measured = serializers.BooleanField(help_text="False while the score is the default.")
    success_rate = serializers.FloatField(
        allow_null=True,
        min_value=0.0,
        max_value=1.0,
        help_text="Completed payments / outcomes in the window; null without outcomes.",
    )
    samples = serializers.IntegerField(min_value=0, help_text="Outcomes in the window.")
    p95_latency_ms = serializers.FloatField(source="p95_ms", allow_null=True)


class RouteOutput(serializers.Serializer):
    """A route of a gateway: the country it serves, how, and its current scores."""

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
    scores = serializers.SerializerMethodField()

    def get_currencies(self, route: GatewayRoute) -> list[str]:
        return list(route.currencies or [route.country.currency])

    @extend_schema_field(RouteScoreOutput(many=True))
    def get_scores(self, route: GatewayRoute) -> list[dict[str, Any]]:
        # The scores of free-form transactions: those of each payment method are for the admin.
        lines = [line for line in self.context["scores"].get(route.pk, []) if not line.payment_method]
        return cast("list[dict[str, Any]]", RouteScoreOutput(lines, many=True).data)


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
            return cast("list[dict[str, Any]]", RouteOutput(gateway.routes.all(), many=True, context=self.context).data)

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
        # Every route's scores in one round trip to the shared store.
        scores = route_score_lines([route for gateway in gateways for route in gateway.routes.all()])
        return Response({"gateways": self.GatewayOutput(gateways, many=True, context={"scores": scores}).data})
