"""The WSDL 1.1 document (document/literal, SOAP 1.1) the XML sandbox serves at `/soap?wsdl`."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

SANDBOX_NS = "urn:paygate:sandbox"

# Kept as plain text so it reads like the document clients see; the only variable part is
# the service address, substituted (attribute-escaped) by `render_wsdl`.
WSDL_TEMPLATE = """<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions name="PaygateSandbox"
    targetNamespace="urn:paygate:sandbox"
    xmlns:tns="urn:paygate:sandbox"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/">

  <wsdl:types>
    <xsd:schema targetNamespace="urn:paygate:sandbox" elementFormDefault="qualified">
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
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="ProcessPaymentResponse">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="PaymentId" type="xsd:string"/>
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
                  <xsd:enumeration value="Completed"/>
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

  <wsdl:portType name="SandboxPortType">
    <wsdl:operation name="ProcessPayment">
      <wsdl:input message="tns:ProcessPaymentInput"/>
      <wsdl:output message="tns:ProcessPaymentOutput"/>
    </wsdl:operation>
    <wsdl:operation name="GetPaymentStatus">
      <wsdl:input message="tns:GetPaymentStatusInput"/>
      <wsdl:output message="tns:GetPaymentStatusOutput"/>
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
  </wsdl:binding>

  <wsdl:service name="SandboxService">
    <wsdl:port name="SandboxPort" binding="tns:SandboxBinding">
      <soap:address location=$location/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""


def render_wsdl(location: str) -> str:
    """The WSDL with `location` (e.g. "http://127.0.0.1:9001/soap") as the service address."""
    return WSDL_TEMPLATE.replace("$location", quoteattr(location))
