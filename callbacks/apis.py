"""`POST /api/v1/callbacks/{gateway_code}`: called by gateways, signed, never by merchants."""

from __future__ import annotations

import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.clientip import client_ip, counted_address
from core.schema import ERROR_RESPONSE
from core.throttling import FailureLimit

from .errors import InvalidSignature
from .models import CallbackEvent
from .services import callback_apply_after_answer, callback_receive

# Callbacks with a bad signature, per gateway and client address, an IPv6 one per /64
# (PAYGATE_CALLBACK_FAILURE_LIMIT). Only bad signatures are refused: a gateway's correctly signed
# callback is never refused for others' failures from its address.
signature_failures = FailureLimit("callback_signature", setting="PAYGATE_CALLBACK_FAILURE_LIMIT")


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
            429: OpenApiResponse(
                ERROR_RESPONSE, description="Too many bad signatures from this address for this gateway (Retry-After)"
            ),
        },
    )
    def post(self, request: Request, gateway_code: str) -> Response:
        # Gateway codes are slugs; anything else in the URL is not worth a key of its own.
        scope = f"{re.sub(r'[^A-Za-z0-9_-]', '_', gateway_code[:64])}:{counted_address(client_ip(request))}"
        try:
            result = callback_receive(gateway_code=gateway_code, body=request.body, headers=request.headers)
        except InvalidSignature:
            wait = signature_failures.record(scope)
            if wait is not None:
                raise exceptions.Throttled(wait) from None
            raise
        if result.event.result != CallbackEvent.Result.RECEIVED:
            return Response({"received": True})
        return ApplyAfterAnswer({"received": True}, event=result.event)


class ApplyAfterAnswer(Response):
    """`200 {"received": true}`, then the stored event is applied when the server closes the response.

    A WSGI server closes a response after it has written all of it, so the gateway has its
    answer before the transaction is updated (CONTRACT §2), without the event waiting in the
    task queue behind the payments.
    """

    def __init__(self, data: dict[str, bool], *, event: CallbackEvent) -> None:
        super().__init__(data)
        self._event = event

    def close(self) -> None:
        try:
            callback_apply_after_answer(event=self._event)
        finally:
            super().close()
