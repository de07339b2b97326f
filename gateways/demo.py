"""The demo configuration of CONTRACT §5: three gateways on loopback sandboxes, four countries."""

from __future__ import annotations

from dataclasses import dataclass


def demo_api_key(code: str) -> str:
    """The demo-only API key of gateway `code`: the format is written nowhere else in Paygate."""
    return f"demo-{code}-api-key"


def demo_callback_secret(code: str) -> str:
    """The demo-only callback secret of gateway `code`."""
    return f"demo-{code}-webhook-secret"


@dataclass(frozen=True)
class DemoGateway:
    code: str
    name: str
    data_format: str
    port: int

    @property
    def api_key(self) -> str:
        return demo_api_key(self.code)

    @property
    def callback_secret(self) -> str:
        return demo_callback_secret(self.code)


DEMO_GATEWAYS = (
    DemoGateway("acmepay", "AcmePay", "json", 8101),
    DemoGateway("soapbank", "SoapBank", "xml", 8102),
    DemoGateway("globex", "Globex", "json", 8103),
)


# (code, name, currency, [(gateway, priority), ...]); minor units come from ISO 4217 (core.currencies).
DEMO_COUNTRIES = (
    ("DE", "Germany", "EUR", [("acmepay", 1), ("soapbank", 2)]),
    ("GB", "United Kingdom", "GBP", [("soapbank", 1), ("globex", 2)]),
    ("US", "United States", "USD", [("globex", 1), ("acmepay", 2)]),
    ("BR", "Brazil", "BRL", [("soapbank", 1)]),
)
