"""The bare endpoint: validate the same body as Paygate, INSERT one row, publish one task after commit.

No authentication, idempotency, routing, encryption or rich response: whatever Paygate's
create endpoint costs beyond this is Paygate's own.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from payments.apis import TransactionCreateInput

from .models import FloorTransaction
from .tasks import publish_noop


class FloorCreateApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type] = []
    transaction_type: str = ""

    def post(self, request: Request) -> Response:
        serializer = TransactionCreateInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        # One INSERT that commits on its own (autocommit), as Paygate's create does for a known
        # customer; on_commit then publishes at once, after it.
        row = FloorTransaction.objects.create(type=self.transaction_type, **serializer.validated_data)
        transaction.on_commit(partial(publish_noop, row.pk), robust=True)
        return Response({"id": str(row.pk), "status": "pending"}, status=status.HTTP_202_ACCEPTED)
