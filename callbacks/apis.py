"""`POST /api/v1/callbacks/{gateway_code}`: called by gateways, signed, never by merchants."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from payments.apis import ERROR_RESPONSE

from .services import callback_receive


class CallbackReceiveApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    # The body is read raw: its bytes are what the signature covers.
    parser_classes: list = []

    @extend_schema(
        operation_id="callback_receive",
        auth=[],
        tags=["callbacks"],
        request={"application/json": OpenApiTypes.OBJECT, "application/xml": OpenApiTypes.STR},
        parameters=[
            OpenApiParameter(
                "X-Signature",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description='t=<unix seconds>,v1=<hex HMAC-SHA256(webhook_secret, "<t>.<raw body>")>',
            )
        ],
        responses={
            200: inline_serializer(name="CallbackReceived", fields={"received": serializers.BooleanField()}),
            400: OpenApiResponse(ERROR_RESPONSE, description="Malformed callback body"),
            401: OpenApiResponse(ERROR_RESPONSE, description="Missing, wrong or stale signature"),
            404: OpenApiResponse(ERROR_RESPONSE, description="Unknown gateway"),
            413: OpenApiResponse(ERROR_RESPONSE, description="Body too large"),
        },
    )
    def post(self, request: Request, gateway_code: str) -> Response:
        callback_receive(gateway_code=gateway_code, body=request.body, headers=request.headers)
        return Response({"received": True})
