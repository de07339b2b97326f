"""Every outbound exchange ends by its wall-clock deadline, however slowly the peer keeps sending.

A real server on loopback answers one byte at a time, each well within the read timeout: per-read
timeouts alone would wait for ever. The deadline shuts the socket, the server sees the hang-up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from core.http import DeadlineExceeded, HttpClient
from core.netguard import AddressPolicy
from harness import Receiver
from harness.receiver import DRIBBLE
from testing.stack import wait_for


@pytest.fixture
def dribbler() -> Iterator[Receiver]:
    receiver = Receiver(dribble_seconds=0.2).start()
    yield receiver
    receiver.stop()


def client() -> HttpClient:
    return HttpClient(address_policy=lambda: AddressPolicy(enforce=False), peer_kind="peer")


def test_a_peer_that_trickles_its_answer_is_cut_off_at_the_deadline(dribbler: Receiver) -> None:
    url = dribbler.on("/slow", DRIBBLE)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        client().send("POST", url, data=b"{}", connect_timeout=1, read_timeout=1, deadline=1.5, peer="t")
    elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 2.5
    assert caught.value.code == "timeout" and caught.value.submitted
    # The socket was shut: the server's next byte finds nobody.
    hung_up = wait_for(lambda: dribbler.hung_up, timeout=5, message="the server sees the hang-up")
    assert hung_up[0][2] - hung_up[0][1] < 2.5


def test_the_default_deadline_is_the_connect_and_read_timeouts_together(dribbler: Receiver) -> None:
    url = dribbler.on("/slow", DRIBBLE)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        client().send("POST", url, connect_timeout=0.5, read_timeout=1, peer="t")
    assert time.monotonic() - started < 2.5


def test_a_pooled_connection_reused_after_a_deadline_still_works(dribbler: Receiver) -> None:
    http = client()
    fast = dribbler.on("/fast", 200)
    assert http.send("POST", fast, data=b"{}", connect_timeout=1, read_timeout=1, peer="t").status == 200
    slow = dribbler.on("/slow", DRIBBLE)
    with pytest.raises(DeadlineExceeded):
        http.send("POST", slow, data=b"{}", connect_timeout=1, read_timeout=1, deadline=0.8, peer="t")
    # Many quick exchanges on the pooled connection, past the earlier deadlines: none is cut.
    for _ in range(20):
        reply = http.send("POST", fast, data=b"{}", connect_timeout=1, read_timeout=1, deadline=0.5, peer="t")
        assert reply.status == 200
    time.sleep(0.6)  # past the last deadlines: a late watchdog must not shut the pooled socket
    assert http.send("POST", fast, data=b"{}", connect_timeout=1, read_timeout=1, peer="t").status == 200


@pytest.mark.parametrize("data_format", ["json", "xml"])
def test_a_gateway_health_check_against_a_trickling_gateway_ends_by_its_deadline(data_format: str) -> None:
    from gateways.adapters import get_adapter
    from gateways.types import GatewayCredentials, HealthResult

    trickling = Receiver(dribble_seconds=0.2, default_answer=DRIBBLE).start()
    try:
        creds = GatewayCredentials(
            code="slow", base_url=trickling.url("/"), api_key="k", connect_timeout=0.5, read_timeout=1.0
        )
        started = time.monotonic()
        result, _ = get_adapter(data_format, creds, client()).check_health()
        assert result is HealthResult.DOWN
        assert time.monotonic() - started < 2.5  # connect + read timeouts, not the trickle's length
    finally:
        trickling.stop()
