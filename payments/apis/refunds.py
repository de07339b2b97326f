"""Merchant API: refund a completed deposit, read a refund (CONTRACT §9)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound
from core.schema import AUTHENTICATED_ERRORS, ERROR_RESPONSE
from core.serializers import StrictCharField, StrictInput

from ..auth import client_of
from ..models import RefundFailureReason, RefundStatus
from ..refunds import refund_create
from ..representations import refund_representation
from ..schema import RefundCreate, RefundCreateXml
from ..selectors import refund_get, transaction_get
from .inputs import IDEMPOTENCY_HEADER, AmountField, idempotency_key


class RefundCreateInput(StrictInput):
    amount = AmountField(
        required=False,
        help_text="What to refund; without it, all that remains refundable. Amount rules as for deposits.",
    )
    reason = StrictCharField(max_length=255, required=False, allow_blank=True, default="")


# The answer's shape, for the schema only: `refund_representation` writes it.
class RefundOutput(serializers.Serializer):
    id = serializers.UUIDField(help_text="Also the reference sent to the gateway.")
    transaction_id = serializers.UUIDField()
    amount = serializers.CharField(read_only=True, help_text="With the currency's minor units.")
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=RefundStatus.choices)
    failure_reason = serializers.ChoiceField(choices=RefundFailureReason.choices, allow_null=True)
    reason = serializers.CharField(help_text="The merchant's reason, as given.")
    gateway = serializers.CharField(help_text="The gateway that completed the deposit.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class RefundCreateApi(APIView):
    xml_root_name = "refund"

    @extend_schema(
        operation_id="refund_create",
        parameters=[
            OpenApiParameter("transaction_id", {"type": "string", "format": "uuid"}, OpenApiParameter.PATH),
            IDEMPOTENCY_HEADER,
        ],
        request={"application/json": RefundCreate, "application/xml": RefundCreateXml, "text/xml": RefundCreateXml},
        responses={
            202: RefundOutput,
            400: OpenApiResponse(ERROR_RESPONSE, description="Validation error or unparseable body"),
            **AUTHENTICATED_ERRORS,
            404: OpenApiResponse(ERROR_RESPONSE, description="No such transaction"),
            409: OpenApiResponse(ERROR_RESPONSE, description="Idempotency-Key reused with a different body"),
            413: OpenApiResponse(ERROR_RESPONSE, description="Body too large"),
            415: OpenApiResponse(ERROR_RESPONSE, description="Unsupported media type"),
            422: OpenApiResponse(
                ERROR_RESPONSE,
                description="not_refundable (not a completed deposit), amount_exceeds_refundable, or "
                "invalid_amount (more decimals than the deposit's currency has)",
            ),
        },
        tags=["refunds"],
        description="Refund a completed deposit, in full or in part, through the gateway that took it.",
    )
    def post(self, request: Request, transaction_id: str) -> Response:
        client = client_of(request)
        txn = transaction_get(client=client, transaction_id=transaction_id)
        if txn is None:
            raise NotFound("No such transaction.")
        serializer = RefundCreateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = refund_create(
            client=client,
            transaction_id=txn.pk,
            amount=data.get("amount"),
            reason=data.get("reason", ""),
            idempotency_key=idempotency_key(request),
        )
        headers = {"Location": f"/api/v1/refunds/{result.refund.pk}"}
        if result.replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(refund_representation(result.refund), status=status.HTTP_202_ACCEPTED, headers=headers)


class RefundDetailApi(APIView):
    xml_root_name = "refund"

    @extend_schema(
        operation_id="refund_retrieve",
        parameters=[OpenApiParameter("refund_id", {"type": "string", "format": "uuid"}, OpenApiParameter.PATH)],
        responses={
            200: RefundOutput,
            404: OpenApiResponse(ERROR_RESPONSE, description="No such refund"),
            **AUTHENTICATED_ERRORS,
        },
        tags=["refunds"],
    )
    def get(self, request: Request, refund_id: str) -> Response:
        refund = refund_get(client=client_of(request), refund_id=refund_id)
        if refund is None:
            raise NotFound("No such refund.")
        return Response(refund_representation(refund))
