"""Gateway adapters: one class per wire format, chosen by the gateway's `data_format`."""

from __future__ import annotations

from core.http import HttpClient
from gateways.adapters.base import GatewayAdapter
from gateways.adapters.json_gateway import JsonGatewayAdapter
from gateways.adapters.soap_gateway import SoapGatewayAdapter
from gateways.types import GatewayCredentials

ADAPTERS: dict[str, type[GatewayAdapter]] = {
    "json": JsonGatewayAdapter,
    "xml": SoapGatewayAdapter,
}


class UnknownDataFormat(KeyError, ValueError):
    """No adapter speaks this data format."""


def get_adapter(data_format: str, credentials: GatewayCredentials, http: HttpClient | None = None) -> GatewayAdapter:
    try:
        adapter_class = ADAPTERS[data_format]
    except KeyError:
        raise UnknownDataFormat(f"no gateway adapter for data format {data_format!r}") from None
    return adapter_class(credentials, http)


__all__ = ["ADAPTERS", "GatewayAdapter", "JsonGatewayAdapter", "SoapGatewayAdapter", "UnknownDataFormat", "get_adapter"]
