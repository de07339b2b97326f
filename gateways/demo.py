"""The demo configuration of CONTRACT §5: three gateways on loopback sandboxes, four countries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoGateway:
    code: str
    name: str
    data_format: str
    port: int

    @property
    def api_key(self) -> str:
        return f"demo-{self.code}-api-key"

    @property
    def webhook_secret(self) -> str:
        return f"demo-{self.code}-webhook-secret"


DEMO_GATEWAYS = (
    DemoGateway("acmepay", "AcmePay", "json", 8101),
    DemoGateway("soapbank", "SoapBank", "xml", 8102),
    DemoGateway("globex", "Globex", "json", 8103),
)


def demo_gateway(code: str) -> DemoGateway:
    """The demo gateway with this code: its credentials are written nowhere else in Paygate."""
    return next(demo for demo in DEMO_GATEWAYS if demo.code == code)


# (code, name, currency, [(gateway, priority), ...]); minor units come from ISO 4217 (core.currencies).
DEMO_COUNTRIES = (
    ("DE", "Germany", "EUR", [("acmepay", 1), ("soapbank", 2)]),
    ("GB", "United Kingdom", "GBP", [("soapbank", 1), ("globex", 2)]),
    ("US", "United States", "USD", [("globex", 1), ("acmepay", 2)]),
    ("BR", "Brazil", "BRL", [("soapbank", 1)]),
)
