"""Saved payment methods in the merchant API (CONTRACT §12): a customer's list, and forgetting one."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.schema import AUTHENTICATED_ERRORS, ERROR_RESPONSE
from gateways.methods import PaymentMethod as MethodType
from payments.auth import client_of

from .selectors import payment_method_list, payment_method_representation
from .services import payment_method_delete


# The answer's shape, for the schema only: `payment_method_representation` writes it.
class PaymentMethodOutput(serializers.Serializer):
    """A saved method, masked: never more than its last four characters."""

    id = serializers.CharField(help_text="pm_…")
    type = serializers.ChoiceField(choices=MethodType.choices, help_text="card, bank_account or wallet.")
    customer_id = serializers.CharField()
    last4 = serializers.CharField(help_text="The last four characters of the card number, IBAN or account.")
    exp_month = serializers.CharField(allow_null=True, help_text="Cards only; null otherwise.")
    exp_year = serializers.CharField(allow_null=True, help_text="Cards only; null otherwise.")
    created_at = serializers.DateTimeField()


class CustomerPaymentMethodListApi(APIView):
    xml_root_name = "payment_methods"

    @extend_schema(
        operation_id="customer_payment_method_list",
        parameters=[OpenApiParameter("customer_id", str, OpenApiParameter.PATH)],
        responses={
            200: inline_serializer(
                name="PaymentMethodList", fields={"payment_methods": PaymentMethodOutput(many=True)}
            ),
            **AUTHENTICATED_ERRORS,
        },
        tags=["payment methods"],
    )
    def get(self, request: Request, customer_id: str) -> Response:
        methods = payment_method_list(client=client_of(request), customer_reference=customer_id)
        return Response({"payment_methods": [payment_method_representation(method) for method in methods]})


class PaymentMethodDetailApi(APIView):
    xml_root_name = "payment_method"

    @extend_schema(
        operation_id="payment_method_delete",
        parameters=[OpenApiParameter("payment_method_id", str, OpenApiParameter.PATH)],
        responses={
            204: None,
            404: OpenApiResponse(ERROR_RESPONSE, description="No such payment method (or already deleted)"),
            **AUTHENTICATED_ERRORS,
        },
        tags=["payment methods"],
    )
    def delete(self, request: Request, payment_method_id: str) -> Response:
        payment_method_delete(client=client_of(request), method_id=payment_method_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
