"""The XML protocol's documents: SOAP 1.1 envelopes in and out, faults, the callback
notifications (payments and refunds), and the WSDL 1.1 document (document/literal) served
at `/soap?wsdl`.

Pure functions over bytes and strings: what an operation does is the gateway's business.
Requests are parsed only with defusedxml, refusing any DTD.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from http import HTTPStatus
from string import Template
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import defusedxml
import defusedxml.ElementTree

SANDBOX_NS = "urn:paygate:sandbox"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"

# Wire element name -> payment field name.
SOAP_PAYMENT_FIELDS = {
    "Reference": "reference",
    "TransactionId": "transaction_id",
    "Type": "type",
    "Amount": "amount",
    "Currency": "currency",
    "Country": "country",
    "CustomerId": "customer_id",
    "CallbackUrl": "callback_url",
}
SOAP_STATUS = {
    "accepted": "Accepted",
    "action_required": "ActionRequired",
    "completed": "Completed",
    "failed": "Failed",
    "declined": "Failed",
}
_SOAP_ACTION_TYPES = {"redirect": "Redirect", "display_code": "DisplayCode"}
# Wire element name -> refund field name.
SOAP_REFUND_FIELDS = {
    "Reference": "reference",
    "PaymentId": "payment_id",
    "Amount": "amount",
    "Currency": "currency",
    "CallbackUrl": "callback_url",
}
SOAP_REFUND_STATUS = {"accepted": "Accepted", "succeeded": "Succeeded", "failed": "Failed", "declined": "Failed"}


class SoapFault(Exception):
    def __init__(self, code: str, message: str, http_status: int = HTTPStatus.INTERNAL_SERVER_ERROR) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def soap_envelope(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV_NS}"><soap:Body>{inner}</soap:Body></soap:Envelope>'
    ).encode()


def action_elements(action: dict[str, Any]) -> str:
    """A payment's action (CONTRACT §11) as the answer's ActionType, ActionUrl, ActionMethod,
    ActionFields (`<Field name="...">value</Field>`...), ActionCode and ActionExpiresAt."""
    parts = [f"<ActionType>{_SOAP_ACTION_TYPES[action['type']]}</ActionType>"]
    if action["type"] == "redirect":
        fields = "".join(
            f"<Field name={quoteattr(name)}>{escape(value)}</Field>" for name, value in action.get("fields", {}).items()
        )
        parts += [
            f"<ActionUrl>{escape(action['url'])}</ActionUrl>",
            f"<ActionMethod>{escape(action['method'])}</ActionMethod>",
            f"<ActionFields>{fields}</ActionFields>",
        ]
    else:
        parts += [
            f"<ActionCode>{escape(action['code'])}</ActionCode>",
            f"<ActionExpiresAt>{escape(action.get('expires_at') or '')}</ActionExpiresAt>",
        ]
    return "".join(parts)


def soap_response(operation: str, values: list[tuple[str, str]], *, extra_xml: str = "") -> bytes:
    children = "".join(f"<{name}>{escape(value)}</{name}>" if value else f"<{name}/>" for name, value in values)
    children += extra_xml
    return soap_envelope(f'<{operation}Response xmlns="{SANDBOX_NS}">{children}</{operation}Response>')


def soap_fault(code: str, message: str) -> bytes:
    # faultcode is unprefixed ("Client.Authentication"), as the gateway contract spells it.
    return soap_envelope(
        f"<soap:Fault><faultcode>{escape(code)}</faultcode><faultstring>{escape(message)}</faultstring></soap:Fault>"
    )


def parse_soap_request(body: bytes) -> tuple[str, dict[str, str]]:
    """(operation, {child local name: text}) from a SOAP 1.1 request; SoapFault if malformed.

    Parsed only with defusedxml, refusing any DTD (so no entity expansion, no XXE).
    """
    try:
        root = defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise SoapFault("Client.BadRequest", f"Forbidden XML construct: {type(exc).__name__}") from None
    except ET.ParseError:
        raise SoapFault("Client.BadRequest", "Malformed XML") from None
    if root.tag != f"{{{SOAP_ENV_NS}}}Envelope":
        raise SoapFault("Client.BadRequest", "Not a SOAP 1.1 envelope")
    soap_body = root.find(f"{{{SOAP_ENV_NS}}}Body")
    if soap_body is None or len(soap_body) == 0:
        raise SoapFault("Client.BadRequest", "The SOAP Body is missing or empty")
    operation = soap_body[0]
    prefix = f"{{{SANDBOX_NS}}}"
    if not operation.tag.startswith(prefix):
        raise SoapFault("Client.BadRequest", f"The operation must be in namespace {SANDBOX_NS}")
    params: dict[str, str] = {}
    for child in operation:
        if child.tag.startswith(prefix):
            name = child.tag[len(prefix) :]
            params.setdefault(name, (child.text or "").strip())
            # An element with children (PaymentDetails): each child as `<Element>.<Child>`.
            for item in child:
                if item.tag.startswith(prefix):
                    params.setdefault(f"{name}.{item.tag[len(prefix) :]}", (item.text or "").strip())
    return operation.tag[len(prefix) :], params


def soap_action(header: str | None) -> str:
    """The operation named by a SOAPAction header, quoted or not ("" if absent)."""
    action = (header or "").strip().strip('"').strip()
    # Tolerate a namespaced action, the namespace followed by "/ProcessPayment" or "#ProcessPayment".
    return action.rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def payment_notification(*, event_id: str, payment_id: str, reference: str, status: str, reason: str | None) -> bytes:
    """The callback body an XML gateway posts for a payment (plain XML, not a SOAP envelope)."""
    return _notification(
        "PaymentNotification",
        [("EventId", event_id), ("PaymentId", payment_id), ("Reference", reference), ("Status", SOAP_STATUS[status])],
        reason,
    )


def refund_notification(*, event_id: str, refund_id: str, reference: str, status: str, reason: str | None) -> bytes:
    """The callback body an XML gateway posts for a refund (plain XML, not a SOAP envelope)."""
    return _notification(
        "RefundNotification",
        [
            ("EventId", event_id),
            ("RefundId", refund_id),
            ("Reference", reference),
            ("Status", SOAP_REFUND_STATUS[status]),
        ],
        reason,
    )


def _notification(root: str, values: list[tuple[str, str]], reason: str | None) -> bytes:
    children = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in values)
    reason_element = f"<Reason>{escape(reason)}</Reason>" if reason else "<Reason/>"
    return f'<?xml version="1.0" encoding="utf-8"?>\n<{root}>{children}{reason_element}</{root}>'.encode()


# --- WSDL -------------------------------------------------------------------------------------

# Kept as plain text so it reads like the document clients see; the namespace and the
# service address (attribute-escaped) are substituted by `render_wsdl`.
WSDL_TEMPLATE = Template("""<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions name="PaygateSandbox"
    targetNamespace="$namespace"
    xmlns:tns="$namespace"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/">

  <wsdl:types>
    <xsd:schema targetNamespace="$namespace" elementFormDefault="qualified">
      <xsd:element name="ProcessPayment">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="ApiKey" type="xsd:string"/>
            <xsd:element name="Reference" type="xsd:string"/>
            <xsd:element name="TransactionId" type="xsd:string"/>
            <xsd:element name="Type">
              <xsd:simpleType>
                <xsd:restriction base="xsd:string">
                  <xsd:enumeration value="deposit"/>
                  <xsd:enumeration value="withdrawal"/>
                </xsd:restriction>
              </xsd:simpleType>
            </xsd:element>
            <xsd:element name="Amount" type="xsd:decimal"/>
            <xsd:element name="Currency" type="xsd:string"/>
            <xsd:element name="Country" type="xsd:string"/>
            <xsd:element name="CustomerId" type="xsd:string"/>
            <xsd:element name="CallbackUrl" type="xsd:anyURI"/>
            <xsd:element name="ReturnUrl" type="xsd:anyURI" minOccurs="0"/>
            <xsd:element name="PaymentMethod" minOccurs="0">
              <xsd:simpleType>
                <xsd:restriction base="xsd:string">
                  <xsd:enumeration value="card"/>
                  <xsd:enumeration value="bank_account"/>
                  <xsd:enumeration value="wallet"/>
                  <xsd:enumeration value="redirect"/>
                </xsd:restriction>
              </xsd:simpleType>
            </xsd:element>
            <xsd:element name="PaymentDetails" type="tns:PaymentDetails" minOccurs="0"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:complexType name="PaymentDetails">
        <xsd:annotation>
          <xsd:documentation>One child per field of the method's details: card Number, ExpMonth,
            ExpYear, Cvc, HolderName; bank_account Iban or AccountNumber with BankCode, HolderName,
            Bic; wallet Provider, Account. Empty for redirect.</xsd:documentation>
        </xsd:annotation>
        <xsd:all>
          <xsd:element name="Number" type="xsd:string" minOccurs="0"/>
          <xsd:element name="ExpMonth" type="xsd:string" minOccurs="0"/>
          <xsd:element name="ExpYear" type="xsd:string" minOccurs="0"/>
          <xsd:element name="Cvc" type="xsd:string" minOccurs="0"/>
          <xsd:element name="HolderName" type="xsd:string" minOccurs="0"/>
          <xsd:element name="Iban" type="xsd:string" minOccurs="0"/>
          <xsd:element name="AccountNumber" type="xsd:string" minOccurs="0"/>
          <xsd:element name="BankCode" type="xsd:string" minOccurs="0"/>
          <xsd:element name="Bic" type="xsd:string" minOccurs="0"/>
          <xsd:element name="Provider" type="xsd:string" minOccurs="0"/>
          <xsd:element name="Account" type="xsd:string" minOccurs="0"/>
        </xsd:all>
      </xsd:complexType>
      <xsd:complexType name="ActionFieldsType">
        <xsd:sequence>
          <xsd:element name="Field" minOccurs="0" maxOccurs="unbounded">
            <xsd:complexType>
              <xsd:simpleContent>
                <xsd:extension base="xsd:string">
                  <xsd:attribute name="name" type="xsd:string" use="required"/>
                </xsd:extension>
              </xsd:simpleContent>
            </xsd:complexType>
          </xsd:element>
        </xsd:sequence>
      </xsd:complexType>
      <xsd:group name="Action">
        <xsd:sequence>
          <xsd:element name="ActionType" minOccurs="0">
            <xsd:simpleType>
              <xsd:restriction base="xsd:string">
                <xsd:enumeration value="Redirect"/>
                <xsd:enumeration value="DisplayCode"/>
              </xsd:restriction>
            </xsd:simpleType>
          </xsd:element>
          <xsd:element name="ActionUrl" type="xsd:anyURI" minOccurs="0"/>
          <xsd:element name="ActionMethod" minOccurs="0">
            <xsd:simpleType>
              <xsd:restriction base="xsd:string">
                <xsd:enumeration value="GET"/>
                <xsd:enumeration value="POST"/>
              </xsd:restriction>
            </xsd:simpleType>
          </xsd:element>
          <xsd:element name="ActionFields" type="tns:ActionFieldsType" minOccurs="0"/>
          <xsd:element name="ActionCode" type="xsd:string" minOccurs="0"/>
          <xsd:element name="ActionExpiresAt" type="xsd:string" minOccurs="0"/>
        </xsd:sequence>
      </xsd:group>
      <xsd:element name="ProcessPaymentResponse">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="PaymentId" type="xsd:string"/>
            <xsd:element name="Status">
              <xsd:simpleType>
                <xsd:restriction base="xsd:string">
                  <xsd:enumeration value="Accepted"/>
                  <xsd:enumeration value="Declined"/>
                  <xsd:enumeration value="ActionRequired"/>
                </xsd:restriction>
              </xsd:simpleType>
            </xsd:element>
            <xsd:element name="Reason" type="xsd:string"/>
            <xsd:group ref="tns:Action"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="GetPaymentStatus">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="ApiKey" type="xsd:string"/>
            <xsd:element name="Reference" type="xsd:string"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="GetPaymentStatusResponse">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="PaymentId" type="xsd:string"/>
            <xsd:element name="Status">
              <xsd:simpleType>
                <xsd:restriction base="xsd:string">
                  <xsd:enumeration value="Accepted"/>
                  <xsd:enumeration value="ActionRequired"/>
                  <xsd:enumeration value="Completed"/>
                  <xsd:enumeration value="Failed"/>
                </xsd:restriction>
              </xsd:simpleType>
            </xsd:element>
            <xsd:element name="Reason" type="xsd:string" minOccurs="0"/>
            <xsd:group ref="tns:Action"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="ProcessRefund">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="ApiKey" type="xsd:string"/>
            <xsd:element name="Reference" type="xsd:string"/>
            <xsd:element name="PaymentId" type="xsd:string"/>
            <xsd:element name="Amount" type="xsd:decimal"/>
            <xsd:element name="Currency" type="xsd:string"/>
            <xsd:element name="CallbackUrl" type="xsd:anyURI"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="ProcessRefundResponse">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="RefundId" type="xsd:string"/>
            <xsd:element name="Status">
              <xsd:simpleType>
                <xsd:restriction base="xsd:string">
                  <xsd:enumeration value="Accepted"/>
                  <xsd:enumeration value="Declined"/>
                </xsd:restriction>
              </xsd:simpleType>
            </xsd:element>
            <xsd:element name="Reason" type="xsd:string"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="GetRefundStatus">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="ApiKey" type="xsd:string"/>
            <xsd:element name="Reference" type="xsd:string"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="GetRefundStatusResponse">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="RefundId" type="xsd:string"/>
            <xsd:element name="Status">
              <xsd:simpleType>
                <xsd:restriction base="xsd:string">
                  <xsd:enumeration value="Accepted"/>
                  <xsd:enumeration value="Succeeded"/>
                  <xsd:enumeration value="Failed"/>
                </xsd:restriction>
              </xsd:simpleType>
            </xsd:element>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </wsdl:types>

  <wsdl:message name="ProcessPaymentInput">
    <wsdl:part name="parameters" element="tns:ProcessPayment"/>
  </wsdl:message>
  <wsdl:message name="ProcessPaymentOutput">
    <wsdl:part name="parameters" element="tns:ProcessPaymentResponse"/>
  </wsdl:message>
  <wsdl:message name="GetPaymentStatusInput">
    <wsdl:part name="parameters" element="tns:GetPaymentStatus"/>
  </wsdl:message>
  <wsdl:message name="GetPaymentStatusOutput">
    <wsdl:part name="parameters" element="tns:GetPaymentStatusResponse"/>
  </wsdl:message>
  <wsdl:message name="ProcessRefundInput">
    <wsdl:part name="parameters" element="tns:ProcessRefund"/>
  </wsdl:message>
  <wsdl:message name="ProcessRefundOutput">
    <wsdl:part name="parameters" element="tns:ProcessRefundResponse"/>
  </wsdl:message>
  <wsdl:message name="GetRefundStatusInput">
    <wsdl:part name="parameters" element="tns:GetRefundStatus"/>
  </wsdl:message>
  <wsdl:message name="GetRefundStatusOutput">
    <wsdl:part name="parameters" element="tns:GetRefundStatusResponse"/>
  </wsdl:message>

  <wsdl:portType name="SandboxPortType">
    <wsdl:operation name="ProcessPayment">
      <wsdl:input message="tns:ProcessPaymentInput"/>
      <wsdl:output message="tns:ProcessPaymentOutput"/>
    </wsdl:operation>
    <wsdl:operation name="GetPaymentStatus">
      <wsdl:input message="tns:GetPaymentStatusInput"/>
      <wsdl:output message="tns:GetPaymentStatusOutput"/>
    </wsdl:operation>
    <wsdl:operation name="ProcessRefund">
      <wsdl:input message="tns:ProcessRefundInput"/>
      <wsdl:output message="tns:ProcessRefundOutput"/>
    </wsdl:operation>
    <wsdl:operation name="GetRefundStatus">
      <wsdl:input message="tns:GetRefundStatusInput"/>
      <wsdl:output message="tns:GetRefundStatusOutput"/>
    </wsdl:operation>
  </wsdl:portType>

  <wsdl:binding name="SandboxBinding" type="tns:SandboxPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="ProcessPayment">
      <soap:operation soapAction="ProcessPayment" style="document"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
    <wsdl:operation name="GetPaymentStatus">
      <soap:operation soapAction="GetPaymentStatus" style="document"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
    <wsdl:operation name="ProcessRefund">
      <soap:operation soapAction="ProcessRefund" style="document"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
    <wsdl:operation name="GetRefundStatus">
      <soap:operation soapAction="GetRefundStatus" style="document"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>

  <wsdl:service name="SandboxService">
    <wsdl:port name="SandboxPort" binding="tns:SandboxBinding">
      <soap:address location=$location/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
""")


def render_wsdl(location: str) -> str:
    """The WSDL with `location` (e.g. "http://127.0.0.1:9001/soap") as the service address."""
    return WSDL_TEMPLATE.substitute(namespace=SANDBOX_NS, location=quoteattr(location))
