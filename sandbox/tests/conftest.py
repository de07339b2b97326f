"""Fixtures of the sandbox's tests: one JSON and one SOAP sandbox per test module, and a callback receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.tests.support import CallbackReceiver, Sandbox, start_sandbox


@pytest.fixture(scope="module")
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def sandbox_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-logs")


@pytest.fixture(scope="module")
def json_server(sandbox_logs: Path) -> Iterator[Sandbox]:
    sandbox = start_sandbox(sandbox_logs, "alpha", "json")
    yield sandbox
    sandbox.stop()


@pytest.fixture(scope="module")
def xml_server(sandbox_logs: Path) -> Iterator[Sandbox]:
    sandbox = start_sandbox(sandbox_logs, "beta", "xml")
    yield sandbox
    sandbox.stop()


@pytest.fixture
def json_gw(json_server: Sandbox, receiver: CallbackReceiver) -> Sandbox:
    json_server.reset()
    receiver.clear()
    return json_server


@pytest.fixture
def xml_gw(xml_server: Sandbox, receiver: CallbackReceiver) -> Sandbox:
    xml_server.reset()
    receiver.clear()
    return xml_server
