"""SOAP 1.1 gateways: one endpoint, the api key in the body (wire format in `soap_transformers`)."""

from __future__ import annotations

import logging
import re
from typing import ClassVar
from xml.etree.ElementTree import Element

from core.http import HttpReply
from gateways.adapters import soap_transformers as wire
from gateways.adapters.base import (
    REJECTED_PREFIX,
    SERVICE_UNAVAILABLE,
    SOAP_FAULT,
    GatewayAdapter,
    MalformedReply,
    WireRequest,
    is_success,
    lookup_result_for_status,
    payment_result_for_status,
    refund_lookup_result_for_status,
    refund_result_for_status,
)
from gateways.adapters.soap_transformers import SoapFault
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

logger = logging.getLogger(__name__)

SOAP_PATH = "/soap"
_NOT_CODE_CHAR = re.compile(r"[^a-z0-9_]")


class SoapGatewayAdapter(GatewayAdapter):
    data_format: ClassVar[str] = "xml"
    callback_content_types: ClassVar[tuple[str, ...]] = ("application/xml", "text/xml")

    def _soap_request(self, operation: str, envelope: bytes) -> WireRequest:
        headers = {
            "Content-Type": wire.CONTENT_TYPE,
            "Accept": "text/xml",
            "SOAPAction": wire.soap_action(operation),
        }
        return WireRequest(method="POST", path=SOAP_PATH, headers=headers, body=envelope)

    def build_create_request(self, request: PaymentRequest) -> WireRequest:
        envelope = wire.process_payment_envelope(request, api_key=self.credentials.api_key)
        return self._soap_request(wire.PROCESS_PAYMENT, envelope)

    def interpret_create_reply(self, reply: HttpReply) -> PaymentResult:
        answer = _read_answer(reply)
        if isinstance(answer, SoapFault):
            self._log_fault(wire.PROCESS_PAYMENT, answer)
            outcome, error = _fault_outcome(answer)
            return PaymentResult(outcome=outcome, error=error)
        if answer is None or not is_success(reply.status):
            return payment_result_for_status(reply.status)
        status, payment_id, reason = wire.parse_payment_response(answer)
        if status == wire.ACTION_REQUIRED:
            return PaymentResult(outcome=Outcome.ACCEPTED, payment_id=payment_id, action=wire.parse_action(answer))
        if status == "Accepted":
            return PaymentResult(outcome=Outcome.ACCEPTED, payment_id=payment_id)
        return PaymentResult(outcome=Outcome.DECLINED, payment_id=payment_id, reason=reason)

    def build_lookup_request(self, reference: str) -> WireRequest:
        envelope = wire.get_payment_status_envelope(reference, api_key=self.credentials.api_key)
        return self._soap_request(wire.GET_PAYMENT_STATUS, envelope)

    def interpret_lookup_reply(self, reply: HttpReply) -> LookupResult:
        answer = _read_answer(reply)
        if isinstance(answer, SoapFault):
            self._log_fault(wire.GET_PAYMENT_STATUS, answer)
            error = _lookup_fault_error(answer)
            if error is None:
                return LookupResult(status=LookupStatus.NOT_FOUND)
            return LookupResult(status=LookupStatus.UNAVAILABLE, error=error)
        if answer is None or not is_success(reply.status):
            return lookup_result_for_status(reply.status)
        status, payment_id = wire.parse_status_response(answer)
        if status == LookupStatus.ACTION_REQUIRED:
            return LookupResult(status=status, payment_id=payment_id, action=wire.parse_action(answer))
        if status == LookupStatus.FAILED:
            return LookupResult(status=status, payment_id=payment_id, reason=wire.parse_status_reason(answer))
        return LookupResult(status=status, payment_id=payment_id)

    def build_refund_request(self, request: RefundRequest) -> WireRequest:
        envelope = wire.process_refund_envelope(request, api_key=self.credentials.api_key)
        return self._soap_request(wire.PROCESS_REFUND, envelope)

    def interpret_refund_reply(self, reply: HttpReply) -> RefundResult:
        answer = _read_answer(reply)
        if isinstance(answer, SoapFault):
            self._log_fault(wire.PROCESS_REFUND, answer)
            outcome, error = _fault_outcome(answer)
            return RefundResult(outcome=outcome, error=error)
        if answer is None or not is_success(reply.status):
            return refund_result_for_status(reply.status)
        status, refund_id, reason = wire.parse_refund_response(answer)
        if status == "Accepted":
            return RefundResult(outcome=Outcome.ACCEPTED, refund_id=refund_id)
        return RefundResult(outcome=Outcome.DECLINED, refund_id=refund_id, reason=reason)

    def build_refund_lookup_request(self, reference: str) -> WireRequest:
        envelope = wire.get_refund_status_envelope(reference, api_key=self.credentials.api_key)
        return self._soap_request(wire.GET_REFUND_STATUS, envelope)

    def interpret_refund_lookup_reply(self, reply: HttpReply) -> RefundLookupResult:
        answer = _read_answer(reply)
        if isinstance(answer, SoapFault):
            self._log_fault(wire.GET_REFUND_STATUS, answer)
            error = _lookup_fault_error(answer)
            if error is None:
                return RefundLookupResult(status=RefundLookupStatus.NOT_FOUND)
            return RefundLookupResult(status=RefundLookupStatus.UNAVAILABLE, error=error)
        if answer is None or not is_success(reply.status):
            return refund_lookup_result_for_status(reply.status)
        status, refund_id = wire.parse_refund_status_response(answer)
        return RefundLookupResult(status=status, refund_id=refund_id)

    def _log_fault(self, operation: str, fault: SoapFault) -> None:
        # The faultstring is for operators: it never becomes a customer-facing reason.
        logger.info("gateway=%s %s fault %s: %.200s", self.credentials.code, operation, fault.code, fault.message)

    @staticmethod
    def parse_callback(body: bytes) -> CallbackNotification | RefundNotification:
        return wire.parse_callback(body)


def _read_answer(reply: HttpReply) -> Element | SoapFault | None:
    """The reply's payload or Fault; None for an unreadable error reply (its status decides)."""
    try:
        return wire.read_envelope(reply.body)
    except MalformedReply:
        if is_success(reply.status):
            raise
        return None


def _fault_outcome(fault: SoapFault) -> tuple[Outcome, str]:
    """A payment's or refund's outcome, and its error code, from the Fault it was answered with."""
    if fault.local_code == "Server.Unavailable":
        return Outcome.NOT_SUBMITTED, SERVICE_UNAVAILABLE
    if fault.is_client_fault:
        return Outcome.NOT_SUBMITTED, _rejected_code(fault)
    return Outcome.UNKNOWN, SOAP_FAULT


def _lookup_fault_error(fault: SoapFault) -> str | None:
    """A look-up's error code from its Fault; None for `Client.NotFound` (never received)."""
    if fault.local_code == "Client.NotFound":
        return None
    if fault.local_code == "Server.Unavailable":
        return SERVICE_UNAVAILABLE
    if fault.is_client_fault:
        return _rejected_code(fault)
    return SOAP_FAULT


def _rejected_code(fault: SoapFault) -> str:
    """`Client.Authentication` → `rejected_client_authentication`."""
    return REJECTED_PREFIX + _NOT_CODE_CHAR.sub("_", fault.local_code.lower().replace(".", "_"))[:64]
