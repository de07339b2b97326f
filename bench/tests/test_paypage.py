"""The paypage phase's request-rate measurement and its section of the report."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import paypage
from bench.report import _paypage_section


class _SeeOther(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self.send_response(303)
        self.send_header("Location", "https://shop.example/bench/return?transaction_id=x")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the standard library's name
        return


@pytest.fixture
def see_other_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SeeOther)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pay/x?t=y"
    finally:
        server.shutdown()
        server.server_close()


def test_every_request_is_counted_by_its_status_without_following_the_redirect(see_other_url: str) -> None:
    result = paypage.rps(see_other_url, requests_n=60, concurrency=4, expect=303)

    assert result["statuses"] == {"303": 60}
    assert result["latency_ms"]["count"] == 60
    assert result["requests_per_s"] > 0


def test_the_report_shows_the_return_and_each_pay_page_figure() -> None:
    item = {"requests": 10, "concurrency": 2, "requests_per_s": 123.4, "statuses": {"303": 10}}
    phase = {
        "n": 5,
        "sandbox": "globex",
        "return_to_merchant_ms": {"p50": 41.0, "p99": 88.0, "max": 90.0},
        "return_outcomes": {"303 to the merchant": 5},
        "rps_final": {**item, "latency_ms": {"p50": 7.0, "p99": 9.0}},
        "rps_requires_action": {**item, "requests_per_s": 99.0, "latency_ms": {"p50": 8.0, "p99": 12.0}},
        "rps_not_routed": {**item, "statuses": {"200": 10}, "latency_ms": {"p50": 9.0, "p99": 15.0}},
    }

    text = "\n".join(_paypage_section({"paypage": phase}))

    assert "p50 41.0 ms, p99 88.0 ms" in text
    assert "| final | 303 to the merchant | 123.4 |" in text
    assert "| waiting for the customer | 303 to the gateway | 99.0 | 8.0 | 12.0 |" in text
    assert "| not yet routed | 200, the waiting page |" in text
    assert _paypage_section({}) == []
