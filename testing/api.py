"""The merchant's side of the API in tests: creating a transaction, reading it, waiting for a status,
and the merchant's return page on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from testing.factories import DEPOSIT, PAY_PAGE_DEPOSIT
from testing.stack import wait_for


def create(
    api: Any, path: str = "/api/v1/deposits", *, body: dict[str, Any] = DEPOSIT, **changes: Any
) -> dict[str, Any]:
    """A transaction of `body` with `changes`, accepted (202)."""
    response = api.post(path, data=json.dumps({**body, **changes}), content_type="application/json")
    assert response.status_code == 202, response.content
    return dict(response.json())


def pay_page_deposit(api: Any, **changes: Any) -> dict[str, Any]:
    """A deposit whose payment details the customer gives on the pay page."""
    return create(api, body=PAY_PAGE_DEPOSIT, **changes)


def fetch(api: Any, txn_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/transactions/{txn_id}")
    assert response.status_code == 200
    return dict(response.json())


def wait_status(api: Any, txn_id: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
    return wait_for(
        lambda: (body := fetch(api, txn_id))["status"] in statuses and body,
        timeout=timeout,
        message=f"transaction {txn_id} to reach {statuses}",
    )


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The API's one error shape, with this status (and code); its `error` object."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    if code:
        assert body["error"]["code"] == code
    return dict(body["error"])


class MerchantPage:
    """The merchant's return page on loopback: answers 200 with a small HTML page, records each visit."""

    def __init__(self) -> None:
        self.visits: list[dict[str, list[str]]] = []
        self.referers: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if not self.path.startswith("/order/"):  # e.g. the browser asking for a favicon
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                outer.visits.append(parse_qs(urlsplit(self.path).query))
                outer.referers.append(self.headers.get("Referer"))
                body = b"<!doctype html><title>Shop</title><h1 id=shop>Thank you for your order</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/order/A-1?from=pay"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def get(url: str, **kwargs: Any) -> requests.Response:
    """A GET as a browser's first request: no redirect followed."""
    return requests.get(url, allow_redirects=False, timeout=10, **kwargs)
