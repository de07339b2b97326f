"""JSON gateways: REST endpoints with a Bearer api key (wire format in `json_transformers`)."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

from core.http import HttpReply
from gateways.adapters import json_transformers as wire
from gateways.adapters.base import (
    GatewayAdapter,
    WireRequest,
    is_success,
    lookup_result_for_status,
    payment_result_for_status,
    refund_lookup_result_for_status,
    refund_result_for_status,
)
from gateways.types import (
    CallbackNotification,
    LookupResult,
    LookupStatus,
    Outcome,
    PaymentRequest,
    PaymentResult,
    RefundLookupResult,
    RefundLookupStatus,
    RefundNotification,
    RefundRequest,
    RefundResult,
)


class JsonGatewayAdapter(GatewayAdapter):
    data_format: ClassVar[str] = "json"
    callback_content_types: ClassVar[tuple[str, ...]] = ("application/json",)

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.api_key}", "Accept": "application/json"}

    def build_create_request(self, request: PaymentRequest) -> WireRequest:
        headers = {
            **self._auth_headers(),
            "Content-Type": "application/json",
            # The reference is our attempt id: a resend of this attempt can never pay twice.
            "Idempotency-Key": request.reference,
        }
        return WireRequest(method="POST", path="/payments", headers=headers, body=wire.payment_body(request))

    def interpret_create_reply(self, reply: HttpReply) -> PaymentResult:
        if not is_success(reply.status):
            return payment_result_for_status(reply.status)
        status, payment_id, reason = wire.parse_payment_reply(reply.body)
        if status == wire.ACTION_REQUIRED:
            return PaymentResult(outcome=Outcome.ACCEPTED, payment_id=payment_id, action=wire.parse_action(reply.body))
        if status == "accepted":
            return PaymentResult(outcome=Outcome.ACCEPTED, payment_id=payment_id)
        return PaymentResult(outcome=Outcome.DECLINED, payment_id=payment_id, reason=reason)

    def build_lookup_request(self, reference: str) -> WireRequest:
        return WireRequest(method="GET", path=f"/payments/{quote(reference, safe='')}", headers=self._auth_headers())

    def interpret_lookup_reply(self, reply: HttpReply) -> LookupResult:
        if reply.status == 404:
            return LookupResult(status=LookupStatus.NOT_FOUND)
        if reply.status != 200:
            return lookup_result_for_status(reply.status)
        status, payment_id = wire.parse_lookup_reply(reply.body)
        if status == LookupStatus.ACTION_REQUIRED:
            return LookupResult(status=status, payment_id=payment_id, action=wire.parse_action(reply.body))
        if status == LookupStatus.FAILED:
            return LookupResult(status=status, payment_id=payment_id, reason=wire.parse_lookup_reason(reply.body))
        return LookupResult(status=status, payment_id=payment_id)

    def build_refund_request(self, request: RefundRequest) -> WireRequest:
        headers = {
            **self._auth_headers(),
            "Content-Type": "application/json",
            # The reference is our refund id: a resend of this refund can never refund twice.
            "Idempotency-Key": request.reference,
        }
        return WireRequest(method="POST", path="/refunds", headers=headers, body=wire.refund_body(request))

    def interpret_refund_reply(self, reply: HttpReply) -> RefundResult:
        if not is_success(reply.status):
            return refund_result_for_status(reply.status)
        status, refund_id, reason = wire.parse_refund_reply(reply.body)
        if status == "accepted":
            return RefundResult(outcome=Outcome.ACCEPTED, refund_id=refund_id)
        return RefundResult(outcome=Outcome.DECLINED, refund_id=refund_id, reason=reason)

    def build_refund_lookup_request(self, reference: str) -> WireRequest:
        return WireRequest(method="GET", path=f"/refunds/{quote(reference, safe='')}", headers=self._auth_headers())

    def interpret_refund_lookup_reply(self, reply: HttpReply) -> RefundLookupResult:
        if reply.status == 404:
            return RefundLookupResult(status=RefundLookupStatus.NOT_FOUND)
        if reply.status != 200:
            return refund_lookup_result_for_status(reply.status)
        status, refund_id = wire.parse_refund_lookup_reply(reply.body)
        return RefundLookupResult(status=status, refund_id=refund_id)

    @staticmethod
    def parse_callback(body: bytes) -> CallbackNotification | RefundNotification:
        return wire.parse_callback(body)
