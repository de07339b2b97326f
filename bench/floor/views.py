"""The bare endpoints: a create that validates, INSERTs and publishes after commit; a callback that UPDATEs.

No authentication, idempotency, routing, locks, encryption, events or rich responses: whatever
Paygate costs beyond this pipeline of the same shape is Paygate's own.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from payments.apis.transactions import TransactionCreateInput

from .models import FloorTransaction
from .tasks import publish


class _Bare(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type] = []
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]


class FloorCreateApi(_Bare):
    transaction_type: str = ""

    def post(self, request: Request) -> Response:
        serializer = TransactionCreateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        # One INSERT that commits on its own (autocommit); on_commit then publishes at once, after it.
        row = FloorTransaction.objects.create(type=self.transaction_type, **serializer.validated_data)
        transaction.on_commit(partial(publish, row.pk), robust=True)
        return Response({"id": str(row.pk), "status": "pending"}, status=status.HTTP_202_ACCEPTED)


class FloorCallbackApi(_Bare):
    def post(self, request: Request) -> Response:
        """The sandbox's JSON callback, unsigned-checked and applied at once: one UPDATE."""
        body = request.data
        final = "completed" if body.get("status") == "completed" else "failed"
        FloorTransaction.objects.filter(pk=body.get("reference")).update(
            status=final, gateway_reference=str(body.get("payment_id") or ""), finished_at=timezone.now()
        )
        return Response({"received": True})
