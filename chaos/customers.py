"""The chaos run's customers: browsers on the pay page of the deposits that carry `return_url` (CONTRACT §11).

A customer opens `next_action.url` (Paygate's pay page) as soon as the merchant got the 202 and
reloads it while it waits. When the page answers `303` to the gateway's challenge (the sandbox
`ACTION_SANDBOX` runs in `redirect` mode), the customer opens it and POSTs the button it chose:
Approve or Cancel. The sandbox sends it `303` to Paygate's return endpoint, which looks the
attempt up and answers `303` to the merchant's `return_url` (reloading the pay page if the
gateway's answer is not in yet). A customer who "never comes back" does nothing at all: its
deposit must end `expired` at the action's deadline.

Each customer's journey is recorded (`history`) for chaos/check.py's `check_actions`.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from chaos.stack import WEB_URL, sandbox_url

# The sandbox switched to `redirect` mode: the first route of US and the second of GB.
ACTION_SANDBOX = "globex"
# The merchant's page the customer is sent back to (https: DEBUG is off). Never fetched.
MERCHANT_RETURN_URL = "https://shop.example/chaos/return"
BEHAVIOURS = ("approve", "cancel", "abandon")


@dataclass(frozen=True)
class CustomerConfig:
    seed: int
    # Of the deposits with return_url: how the customers behave at the challenge.
    weights: tuple[float, float, float] = (0.45, 0.3, 0.25)
    # How long a customer waits on the pay page for the gateway's answer before giving up.
    patience: float = 60.0
    poll_interval: float = 1.0


def merchant_return_url(index: int) -> str:
    return f"{MERCHANT_RETURN_URL}?order={index}"


class Customers:
    """One thread per customer; `offer` is called with each deposit answered 202 with a `next_action`."""

    def __init__(self, config: CustomerConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.history: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def offer(self, index: int, txn_id: str, url: str | None) -> None:
        with self._lock:
            behaviour = self.rng.choices(BEHAVIOURS, weights=self.config.weights)[0]
            record: dict[str, Any] = {
                "index": index,
                "id": txn_id,
                "behaviour": behaviour,
                "pay_url": url,
                "steps": [],
                "chose": None,  # the button POSTed and answered by the sandbox
                "outcome": None,
            }
            self.history.append(record)
        if behaviour == "abandon" or not url:
            record["outcome"] = "never came back" if url else "no next_action in the 202"
            return
        thread = threading.Thread(target=self._journey, args=(record,), name=f"customer-{index}", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(thread.is_alive() for thread in threads)

    # --- one customer ------------------------------------------------------------------------------

    def _get(self, session: requests.Session, record: dict[str, Any], url: str) -> requests.Response | None:
        try:
            response = session.get(url, allow_redirects=False, timeout=(3, 15))
        except requests.RequestException as exc:
            record["steps"].append(("GET", _path(url), type(exc).__name__))
            return None
        record["steps"].append(("GET", _path(url), response.status_code))
        return response

    def _journey(self, record: dict[str, Any]) -> None:
        session = requests.Session()
        session.trust_env = False
        give_up = time.monotonic() + self.config.patience
        gateway = sandbox_url(ACTION_SANDBOX)
        # 1. The pay page until it forwards the customer somewhere.
        location = None
        while time.monotonic() < give_up and not self._stop.is_set():
            response = self._get(session, record, record["pay_url"])
            if response is not None and response.status_code == 303:
                location = urljoin(record["pay_url"], response.headers.get("Location", ""))
                break
            if response is not None and response.status_code == 404:
                record["outcome"] = "pay page answered 404"
                return
            self._stop.wait(self.config.poll_interval)
        if location is None:
            record["outcome"] = "gave up waiting on the pay page"
            return
        if location.startswith(MERCHANT_RETURN_URL):
            record["merchant_redirect"] = location
            record["outcome"] = "final before any action"
            return
        if not location.startswith(f"{gateway}/challenge/"):
            record["redirected_elsewhere"] = location
            record["outcome"] = "sent to an unexpected address"
            return
        # 2. The gateway's challenge, and the chosen button.
        record["challenge_at"] = time.time()
        challenge = self._get(session, record, location)
        if challenge is None or challenge.status_code != 200 or "choice" not in challenge.text:
            record["outcome"] = "challenge page not shown"
            return
        choice = record["behaviour"]
        decide = f"{location}/decide"
        answer = None
        for _ in range(3):
            try:
                answer = session.post(decide, data={"choice": choice}, allow_redirects=False, timeout=(3, 15))
                record["steps"].append(("POST", _path(decide), answer.status_code))
                break
            except requests.RequestException as exc:
                record["steps"].append(("POST", _path(decide), type(exc).__name__))
                self._stop.wait(1.0)
        if answer is None or answer.status_code != 303:
            record["outcome"] = "the gateway did not take the choice"
            return
        record["chose"] = choice
        # 3. Back to Paygate's return endpoint, then (when final) to the merchant.
        back = urljoin(decide, answer.headers.get("Location", ""))
        if not back.startswith(f"{WEB_URL}/pay/{record['id']}/return?"):
            record["redirected_elsewhere"] = back
            record["outcome"] = "the gateway sent the customer to an unexpected address"
            return
        url = back
        until = time.monotonic() + 30.0
        while time.monotonic() < until and not self._stop.is_set():
            response = self._get(session, record, url)
            if response is not None and response.status_code == 303:
                target = urljoin(url, response.headers.get("Location", ""))
                if target.startswith(MERCHANT_RETURN_URL):
                    record["merchant_redirect"] = target
                    record["outcome"] = f"{choice}: back at the merchant"
                    return
                record["redirected_elsewhere"] = target
                record["outcome"] = "sent to an unexpected address after the gateway"
                return
            url = record["pay_url"]  # not final yet: the pay page reloads itself
            self._stop.wait(self.config.poll_interval)
        record["outcome"] = f"{choice}: not back at the merchant in time"


def _path(url: str) -> str:
    """A URL without its token, for the record."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def redirect_transaction_id(url: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get("transaction_id")
    return values[0] if values else None
