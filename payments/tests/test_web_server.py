"""The web server as `make run` starts it (the Procfile's `web` line), as clients meet it.

A client that sends its request headers a line at a time never finishes its request; a server
that gives each connection a thread while it reads the request runs out of threads after a
handful of them, and every other request waits. And a gateway's callback is answered before
the web process applies it (callbacks/apis.py), which depends on when the server closes a
response.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from django.db import transaction

from callbacks.models import CallbackEvent
from core.signing import signature_header
from gateways.demo import demo_callback_secret
from harness import free_port
from payments.models import Attempt, Transaction
from testing.factories import IBAN
from testing.stack import ROOT, Process, Sandbox, wait_for, worker_env

SLOW_CLIENTS = 40
HEADER_LINE_EVERY = 0.5  # seconds between two header lines of one slow client
SLOW_CLIENTS_AT_MOST = 20.0  # seconds: the slow clients stop by themselves after this
NORMAL_REQUEST_DEADLINE = 1.0  # seconds


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name!r} process in the Procfile")


def get(port: int, path: str, *, timeout: float) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def answers(port: int) -> bool:
    try:
        return get(port, "/healthz", timeout=1) == 200
    except OSError:
        return False


@contextmanager
def procfile_web(name: str, env: dict[str, str]) -> Iterator[int]:
    """The Procfile's web process on a free loopback port, as honcho runs it (a shell expands the line)."""
    port = free_port()
    env = dict(env, PAYGATE_BIND=f"127.0.0.1:{port}", DEBUG="True", PYTHONUNBUFFERED="1")
    web = Process(name, ["bash", "-c", f"exec {procfile_command('web')}"], env).start()
    try:
        wait_for(lambda: answers(port), timeout=60, message="the web process to answer /healthz")
        # Every worker process imports Django on its first request: not what is measured here.
        for _ in range(20):
            assert answers(port)
        yield port
    finally:
        web.stop()


@pytest.fixture
def web_port() -> Iterator[int]:
    with procfile_web("web-slow-clients", dict(os.environ)) as port:
        yield port


class SlowClients:
    """Connections that each send a request line, then one header line every half second, never the end."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        for sock in self.sockets:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.rounds = 0
        self.open_in_last_round = count
        self.stop = threading.Event()
        self._deadline = time.monotonic() + SLOW_CLIENTS_AT_MOST
        self._thread = threading.Thread(target=self._feed, daemon=True)

    def _feed(self) -> None:
        while not self.stop.is_set() and time.monotonic() < self._deadline:
            sent = 0
            for sock in self.sockets:
                try:
                    sock.sendall(b"X-Slow-%d: keep-waiting\r\n" % self.rounds)
                    sent += 1
                except OSError:
                    pass
            self.open_in_last_round = sent
            self.rounds += 1
            # The attack's own pace (one line per client every half second), not a synchronisation.
            self.stop.wait(HEADER_LINE_EVERY)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(HEADER_LINE_EVERY * 4)
        for sock in self.sockets:
            sock.close()


@pytest.mark.integration
def test_forty_slow_clients_do_not_delay_a_normal_request(web_port: int) -> None:
    with SlowClients(web_port, SLOW_CLIENTS) as slow:
        # Three rounds of header lines: every slow client has reached the server and is mid-request.
        wait_for(lambda: slow.rounds >= 3, timeout=10, message="the slow clients to send their lines")
        for _ in range(5):
            started = time.monotonic()
            try:
                status = get(web_port, "/healthz", timeout=NORMAL_REQUEST_DEADLINE)
            except TimeoutError:
                pytest.fail(f"a normal request got no answer within {NORMAL_REQUEST_DEADLINE}s behind slow clients")
            elapsed = time.monotonic() - started
            assert status == 200
            assert elapsed < NORMAL_REQUEST_DEADLINE
        # The slow clients were still connected and sending while the normal requests were served.
        assert slow.open_in_last_round == SLOW_CLIENTS
        assert not slow.stop.is_set()


@pytest.mark.integration
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_web_server_answers_a_callback_before_it_applies_it(
    api: Any, stack: dict[str, Sandbox], live_server: Any
) -> None:
    stack["acmepay"].mode("ok", callback="none")
    deposit = {"customer_id": "cus_web", "country": "DE", "amount": "5.00", "currency": "EUR"}
    created = api.post(
        "/api/v1/deposits",
        data=json.dumps({**deposit, "payment_details": {"iban": IBAN, "holder_name": "J R"}}),
        content_type="application/json",
    )
    txn_id = created.json()["id"]
    wait_for(lambda: Transaction.objects.filter(pk=txn_id, status="processing").exists(), message="processing")
    attempt = Attempt.objects.get(transaction_id=txn_id)
    body = json.dumps(
        {
            "event_id": "evt_web",
            "payment_id": attempt.gateway_payment_id,  # as the gateway answered: another id is flagged
            "reference": str(attempt.pk),
            "status": "completed",
        }
    ).encode()
    headers = {
        "X-Signature": signature_header(secret=demo_callback_secret("acmepay"), body=body),
        "Content-Type": "application/json",
    }
    with procfile_web("web-callbacks", worker_env(live_server.url)) as port:
        with transaction.atomic():
            # Applying the event locks this row: while it is held here, the web process can
            # answer only if it answers before it applies.
            Transaction.objects.select_for_update().get(pk=txn_id)
            answer = requests.post(
                f"http://127.0.0.1:{port}/api/v1/callbacks/acmepay", data=body, headers=headers, timeout=10
            )
            assert (answer.status_code, answer.json()) == (200, {"received": True})
            assert CallbackEvent.objects.get(event_id="evt_web").result == CallbackEvent.Result.RECEIVED
        # No worker sweep runs here: the web process applies it once the lock is gone.
        wait_for(
            lambda: CallbackEvent.objects.get(event_id="evt_web").result == CallbackEvent.Result.APPLIED,
            message="the web process to apply the callback",
        )
    assert Transaction.objects.get(pk=txn_id).status == "completed"
