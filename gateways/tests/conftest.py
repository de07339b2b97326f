"""Fixtures of the adapters' tests: the scripted gateway (testing/fakegateway.py) and adapters pointed at it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from core.http import HttpClient
from gateways.adapters import JsonGatewayAdapter, SoapGatewayAdapter
from gateways.adapters.http import gateway_http_client
from testing.fakegateway import StubGateway, credentials, read_timeout_for


@pytest.fixture(scope="module")
def stub_server() -> Iterator[StubGateway]:
    stub = StubGateway.start()
    yield stub
    stub.stop()


@pytest.fixture
def gateway(stub_server: StubGateway) -> Iterator[StubGateway]:
    stub_server.reset()
    yield stub_server
    stub_server.reset()


@pytest.fixture(scope="module")
def http_client() -> Iterator[HttpClient]:
    client = gateway_http_client()
    yield client
    client.close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def json_adapter(gateway: StubGateway, http_client: HttpClient, request: pytest.FixtureRequest) -> JsonGatewayAdapter:
    creds = credentials(gateway.base_url + "/", code="sandbox-json", read_timeout=read_timeout_for(request))
    return JsonGatewayAdapter(creds, http_client)


@pytest.fixture
def soap_adapter(gateway: StubGateway, http_client: HttpClient, request: pytest.FixtureRequest) -> SoapGatewayAdapter:
    creds = credentials(gateway.base_url, code="sandbox-soap", read_timeout=read_timeout_for(request))
    return SoapGatewayAdapter(creds, http_client)
