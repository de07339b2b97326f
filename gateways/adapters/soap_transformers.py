"""The SOAP 1.1 gateways' wire format.

Envelopes are built by hand (the contract is a handful of operations, not worth a WSDL
toolkit) and every XML input is parsed with defusedxml with DTDs forbidden, so no
entity expansion or external reference can reach us through a gateway.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml
import defusedxml.ElementTree as SafeET

from gateways.adapters.base import MalformedReply, amount_string, customer_action
from gateways.types import (
    CallbackNotification,
    CallbackParseError,
    CustomerAction,
    LookupStatus,
    PaymentRequest,
    RefundLookupStatus,
    RefundNotification,
    RefundRequest,
)

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SANDBOX_NS = "urn:paygate:sandbox"
CONTENT_TYPE = "text/xml; charset=utf-8"
PROCESS_PAYMENT = "ProcessPayment"
GET_PAYMENT_STATUS = "GetPaymentStatus"
PROCESS_REFUND = "ProcessRefund"
GET_REFUND_STATUS = "GetRefundStatus"
MAX_ID_LENGTH = 255

ACTION_REQUIRED = "ActionRequired"
_PAYMENT_STATUSES = frozenset({"Accepted", "Declined"})
_ACTION_TYPES = {"Redirect": "redirect", "DisplayCode": "display_code"}
_LOOKUP_STATUSES = {
    "Accepted": LookupStatus.ACCEPTED,
    ACTION_REQUIRED: LookupStatus.ACTION_REQUIRED,
    "Completed": LookupStatus.COMPLETED,
    "Failed": LookupStatus.FAILED,
}
_CALLBACK_STATUSES = frozenset({"Completed", "Failed"})
_REFUND_LOOKUP_STATUSES = {
    "Accepted": RefundLookupStatus.ACCEPTED,
    "Succeeded": RefundLookupStatus.SUCCEEDED,
    "Failed": RefundLookupStatus.FAILED,
}
_REFUND_CALLBACK_STATUSES = frozenset({"Succeeded", "Failed"})
# Characters XML 1.0 cannot carry at all, not even as character references.
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class InvalidXml(ValueError):
    """Not well-formed, or refused by defusedxml (DTD, entities, external references)."""


# --- requests ----------------------------------------------------------------------------


def soap_action(operation: str) -> str:
    return f'"{operation}"'  # SOAP 1.1 requires the quotes


def process_payment_envelope(request: PaymentRequest, *, api_key: str) -> bytes:
    return envelope(
        PROCESS_PAYMENT,
        [
            ("ApiKey", api_key),
            ("Reference", request.reference),
            ("TransactionId", request.transaction_id),
            ("Type", request.type),
            ("Amount", amount_string(request.amount)),
            ("Currency", request.currency),
            ("Country", request.country),
            ("CustomerId", request.customer_id),
            ("CallbackUrl", request.callback_url),
            *([("ReturnUrl", request.return_url)] if request.return_url else []),
        ],
        extra=payment_method_xml(request),
    )


def details_element_name(key: str) -> str:
    """A details field as its SOAP element: `exp_month` → `ExpMonth`."""
    return "".join(part.capitalize() for part in key.split("_"))


def payment_method_xml(request: PaymentRequest) -> str:
    """CONTRACT §12: `PaymentMethod`, and `PaymentDetails` with one child element per field; "" without a method."""
    if not request.payment_method:
        return ""
    children = "".join(
        f"<{details_element_name(key)}>{_xml_text(value)}</{details_element_name(key)}>"
        for key, value in request.payment_details.items()
    )
    return (
        f"<PaymentMethod>{_xml_text(request.payment_method)}</PaymentMethod><PaymentDetails>{children}</PaymentDetails>"
    )


def get_payment_status_envelope(reference: str, *, api_key: str) -> bytes:
    return envelope(GET_PAYMENT_STATUS, [("ApiKey", api_key), ("Reference", reference)])


def process_refund_envelope(request: RefundRequest, *, api_key: str) -> bytes:
    return envelope(
        PROCESS_REFUND,
        [
            ("ApiKey", api_key),
            ("Reference", request.reference),
            ("PaymentId", request.payment_id),
            ("Amount", amount_string(request.amount)),
            ("Currency", request.currency),
            ("CallbackUrl", request.callback_url),
        ],
    )


def get_refund_status_envelope(reference: str, *, api_key: str) -> bytes:
    return envelope(GET_REFUND_STATUS, [("ApiKey", api_key), ("Reference", reference)])


def envelope(operation: str, fields: Sequence[tuple[str, str]], *, extra: str = "") -> bytes:
    """`extra`: elements already written, after the fields."""
    children = "".join(f"<{name}>{_xml_text(value)}</{name}>" for name, value in fields) + extra
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV_NS}">'
        f'<soap:Body><{operation} xmlns="{SANDBOX_NS}">{children}</{operation}></soap:Body>'
        "</soap:Envelope>"
    ).encode()


def _xml_text(value: str) -> str:
    if _NOT_XML_CHAR.search(value):
        raise ValueError("value contains a character XML cannot carry")
    # A raw CR would be normalised to LF by the receiving parser.
    return escape(value, {"\r": "&#13;"})


# --- parsing -----------------------------------------------------------------------------


def parse_xml(body: bytes) -> Element:
    try:
        return SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (SafeET.ParseError, defusedxml.DefusedXmlException, ValueError) as exc:
        raise InvalidXml(f"{type(exc).__name__}: {exc}") from None


def local_name(tag: str) -> str:
    """`{ns}Name` or `prefix:Name` → `Name`."""
    return tag.rpartition("}")[2].rpartition(":")[2]


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if isinstance(child.tag, str) and local_name(child.tag) == name]


def child_text(element: Element, name: str, *, error: type[Exception]) -> str | None:
    """The stripped text of the one child `name` (None when absent); nested markup is refused."""
    matches = _children(element, name)
    if not matches:
        return None
    if len(matches) > 1:
        raise error(f"<{name}> appears {len(matches)} times")
    (child,) = matches
    if len(child):
        raise error(f"<{name}> must hold text only")
    return (child.text or "").strip()


@dataclass(frozen=True, slots=True)
class SoapFault:
    code: str  # as sent, e.g. "soap:Server.Unavailable"
    message: str | None

    @property
    def local_code(self) -> str:
        return self.code.rpartition(":")[2]

    @property
    def is_client_fault(self) -> bool:
        return self.local_code == "Client" or self.local_code.startswith("Client.")


def read_envelope(body: bytes) -> Element | SoapFault:
    """The payload element of a SOAP 1.1 reply, or its Fault."""
    try:
        root = parse_xml(body)
    except InvalidXml as exc:
        raise MalformedReply(str(exc)) from None
    if root.tag != f"{{{SOAP_ENV_NS}}}Envelope":
        raise MalformedReply(f"root element is {root.tag!r}, not a SOAP 1.1 Envelope")
    bodies = root.findall(f"{{{SOAP_ENV_NS}}}Body")
    if len(bodies) != 1 or len(bodies[0]) < 1:
        raise MalformedReply("the envelope needs exactly one non-empty Body")
    payload = bodies[0][0]
    if payload.tag == f"{{{SOAP_ENV_NS}}}Fault":
        return _read_fault(payload)
    return payload


def _read_fault(fault: Element) -> SoapFault:
    code = child_text(fault, "faultcode", error=MalformedReply)
    if not code:
        raise MalformedReply("the Fault has no faultcode")
    return SoapFault(code=code, message=child_text(fault, "faultstring", error=MalformedReply) or None)


def _expect(payload: Element, name: str) -> None:
    if payload.tag not in (f"{{{SANDBOX_NS}}}{name}", name):
        raise MalformedReply(f"expected {name}, got {payload.tag!r}")


def _reply_id(payload: Element, name: str) -> str:
    value = child_text(payload, name, error=MalformedReply)
    if not value or len(value) > MAX_ID_LENGTH:
        raise MalformedReply(f"<{name}> must be non-empty and at most {MAX_ID_LENGTH} characters")
    return value


def parse_payment_response(payload: Element) -> tuple[str, str | None, str | None]:
    """`ProcessPaymentResponse` → ("Accepted", payment_id, None), ("Declined", payment_id?, reason) or
    ("ActionRequired", payment_id, None): then `parse_action` reads what the customer must do."""
    _expect(payload, "ProcessPaymentResponse")
    if child_text(payload, "Status", error=MalformedReply) == ACTION_REQUIRED:
        return ACTION_REQUIRED, _reply_id(payload, "PaymentId"), None
    return _parse_submit_response(payload, "ProcessPaymentResponse", "PaymentId")


def parse_action(payload: Element) -> CustomerAction:
    """`ActionType` (Redirect|DisplayCode), `ActionUrl`, `ActionMethod`, `ActionFields`
    (`<Field name="…">value</Field>`…), `ActionCode`, `ActionExpiresAt` (CONTRACT §11)."""
    raw_type = child_text(payload, "ActionType", error=MalformedReply) or ""
    if raw_type not in _ACTION_TYPES:
        raise MalformedReply(f"unexpected ActionType {raw_type!r}")
    fields: list[tuple[str, str]] = []
    containers = _children(payload, "ActionFields")
    if len(containers) > 1:
        raise MalformedReply("<ActionFields> appears more than once")
    for container in containers:
        for field in container:
            if not isinstance(field.tag, str) or local_name(field.tag) != "Field" or len(field):
                raise MalformedReply("<ActionFields> holds only <Field name=...>text</Field>")
            fields.append((field.get("name") or "", field.text or ""))
    return customer_action(
        type_=_ACTION_TYPES[raw_type],
        url=child_text(payload, "ActionUrl", error=MalformedReply) or None,
        method=child_text(payload, "ActionMethod", error=MalformedReply) or None,
        fields=fields,
        code=child_text(payload, "ActionCode", error=MalformedReply) or None,
        expires_at=child_text(payload, "ActionExpiresAt", error=MalformedReply) or None,
    )


def parse_status_reason(payload: Element) -> str | None:
    return child_text(payload, "Reason", error=MalformedReply) or None


def parse_refund_response(payload: Element) -> tuple[str, str | None, str | None]:
    """`ProcessRefundResponse` → ("Accepted", refund_id, None) or ("Declined", refund_id?, reason)."""
    return _parse_submit_response(payload, "ProcessRefundResponse", "RefundId")


def _parse_submit_response(payload: Element, name: str, id_name: str) -> tuple[str, str | None, str | None]:
    _expect(payload, name)
    status = child_text(payload, "Status", error=MalformedReply)
    if status not in _PAYMENT_STATUSES:
        raise MalformedReply(f"unexpected {name} status {status!r}")
    reason = child_text(payload, "Reason", error=MalformedReply) or None
    if status == "Accepted":
        return status, _reply_id(payload, id_name), None
    return status, child_text(payload, id_name, error=MalformedReply) or None, reason


def parse_status_response(payload: Element) -> tuple[LookupStatus, str]:
    """`GetPaymentStatusResponse` → (status, payment_id)."""
    _expect(payload, "GetPaymentStatusResponse")
    raw_status = child_text(payload, "Status", error=MalformedReply)
    status = _LOOKUP_STATUSES.get(raw_status or "")
    if status is None:
        raise MalformedReply(f"unexpected lookup status {raw_status!r}")
    return status, _reply_id(payload, "PaymentId")


def parse_refund_status_response(payload: Element) -> tuple[RefundLookupStatus, str]:
    """`GetRefundStatusResponse` → (status, refund_id)."""
    _expect(payload, "GetRefundStatusResponse")
    raw_status = child_text(payload, "Status", error=MalformedReply)
    status = _REFUND_LOOKUP_STATUSES.get(raw_status or "")
    if status is None:
        raise MalformedReply(f"unexpected refund lookup status {raw_status!r}")
    return status, _reply_id(payload, "RefundId")


# --- callbacks ---------------------------------------------------------------------------


def parse_callback(body: bytes) -> CallbackNotification | RefundNotification:
    """`<PaymentNotification>` with EventId, PaymentId, Reference, Status (Completed|Failed), Reason;
    or `<RefundNotification>` with EventId, RefundId, Reference, Status (Succeeded|Failed), Reason."""
    try:
        root = parse_xml(body)
    except InvalidXml as exc:
        raise CallbackParseError(str(exc)) from None
    if root.tag in ("RefundNotification", f"{{{SANDBOX_NS}}}RefundNotification"):
        return _parse_refund_callback(root)
    if root.tag not in ("PaymentNotification", f"{{{SANDBOX_NS}}}PaymentNotification"):
        raise CallbackParseError(f"root element is {root.tag!r}, not PaymentNotification or RefundNotification")
    status = child_text(root, "Status", error=CallbackParseError)
    if status not in _CALLBACK_STATUSES:
        raise CallbackParseError("<Status> must be Completed or Failed")
    payment_id = child_text(root, "PaymentId", error=CallbackParseError)
    if payment_id is not None and len(payment_id) > MAX_ID_LENGTH:
        raise CallbackParseError(f"<PaymentId> is longer than {MAX_ID_LENGTH} characters")
    return CallbackNotification(
        event_id=_callback_id(root, "EventId"),
        reference=_callback_id(root, "Reference"),
        status=status.lower(),
        payment_id=payment_id or None,
        reason=child_text(root, "Reason", error=CallbackParseError) or None,
    )


def _parse_refund_callback(root: Element) -> RefundNotification:
    status = child_text(root, "Status", error=CallbackParseError)
    if status not in _REFUND_CALLBACK_STATUSES:
        raise CallbackParseError("a refund's <Status> must be Succeeded or Failed")
    refund_id = child_text(root, "RefundId", error=CallbackParseError)
    if refund_id is not None and len(refund_id) > MAX_ID_LENGTH:
        raise CallbackParseError(f"<RefundId> is longer than {MAX_ID_LENGTH} characters")
    return RefundNotification(
        event_id=_callback_id(root, "EventId"),
        refund_id=refund_id or None,
        reference=_callback_id(root, "Reference"),
        status=status.lower(),
        reason=child_text(root, "Reason", error=CallbackParseError) or None,
    )


def _callback_id(root: Element, name: str) -> str:
    value = child_text(root, name, error=CallbackParseError)
    if not value or len(value) > MAX_ID_LENGTH:
        raise CallbackParseError(f"<{name}> must be non-empty and at most {MAX_ID_LENGTH} characters")
    return value
