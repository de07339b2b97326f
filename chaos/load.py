"""The chaos run's load: merchant backends sending deposits and withdrawals, retrying with the same key."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from chaos.customers import merchant_return_url
from chaos.stack import (
    WEB_URL,
)
from chaos.timeline import Timeline, now_iso

COUNTRIES = {
    "DE": ("EUR", {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"}),
    "GB": ("GBP", {"iban": "GB29NWBK60161331926819", "holder_name": "John Smith"}),
    "US": ("USD", {"account_number": "000123456789", "routing_number": "110000000", "holder_name": "Ann Lee"}),
    "BR": ("BRL", {"pix_key": "ana@example.com", "holder_name": "Ana Souza"}),
}
# The path of the run's webhook endpoint on its receiver.
# Deposits with return_url (CONTRACT §11), each with a customer behind it: every one of the countries
# routed to chaos.customers.ACTION_SANDBOX (the US first, GB after soapbank), which asks for an action,
# and this share of the others.
ACTION_COUNTRIES = ("US", "GB")
RETURN_URL_SHARE_ELSEWHERE = 0.2
# Seconds, start-up to exit, for --short; the load phase is sized from it.

# --- the clients -----------------------------------------------------------------------------------


@dataclass
class LoadConfig:
    duration: float
    rate: float
    clients: int
    max_tries: int = 30
    request_deadline: float = 120.0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


class Load:
    """Merchant backends: a steady stream of creates; a retry re-sends the same body with the same key."""

    def __init__(
        self,
        config: LoadConfig,
        api_key: str,
        rng: random.Random,
        timeline: Timeline,
        on_deposit: Callable[[int, str], None] | None = None,
        return_url_rng: random.Random | None = None,
        on_action: Callable[[int, str, str | None], None] | None = None,
    ) -> None:
        self.config = config
        # Deposits that carry return_url (drawn from their own generator, so that a seed's other
        # requests stay what they were); each one answered 202 is handed to its customer.
        self.return_url_rng = return_url_rng
        self.on_action = on_action
        self.api_key = api_key
        self.timeline = timeline
        # Told of each deposit answered 202 (its index and id): the refunds pick theirs from these.
        self.on_deposit = on_deposit
        self.history: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0
        self._end = 0.0
        # The bodies are drawn up front, from the seed, so a run's requests are reproducible.
        count = int(config.duration * config.rate) + 1
        self._bodies = [self._with_return_url(self._body(rng, index), index) for index in range(count)]

    def _with_return_url(self, item: tuple[str, str, dict[str, Any]], index: int) -> tuple[str, str, dict[str, Any]]:
        """Every US and GB deposit carries return_url (the US's first route and the GB's second ask for
        an action: a customer is behind each), and a share of the others (their gateways need none: the
        pay page forwards at the end)."""
        key, kind, body = item
        rng = self.return_url_rng
        if rng is None or kind != "deposits":
            return item
        if body["country"] in ACTION_COUNTRIES or rng.random() < RETURN_URL_SHARE_ELSEWHERE:
            body["return_url"] = merchant_return_url(index)
        return key, kind, body

    def _body(self, rng: random.Random, index: int) -> tuple[str, str, dict[str, Any]]:
        country = rng.choice(sorted(COUNTRIES))
        currency, details = COUNTRIES[country]
        kind = "deposits" if rng.random() < 0.6 else "withdrawals"
        body = {
            "customer_id": f"cus_{rng.randrange(1, 300)}",
            "country": country,
            "currency": currency,
            "amount": f"{rng.randrange(100, 100000) / 100:.2f}",
            "payment_details": details,
            "metadata": {"chaos_run": self.config.run_id, "n": index},
        }
        return f"chaos-{self.config.run_id}-{index:06d}", kind, body

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._end = self._t0 + self.config.duration
        for index in range(self.config.clients):
            thread = threading.Thread(target=self._client, name=f"client-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(thread.is_alive() for thread in self._threads)

    def stop(self) -> None:
        self._stop.set()

    def in_flight(self) -> int:
        return sum(thread.is_alive() for thread in self._threads)

    def _take(self) -> int | None:
        with self._lock:
            index = self._next
            if index >= len(self._bodies):
                return None
            self._next += 1
        due = self._t0 + index / self.config.rate
        if due >= self._end:
            return None
        delay = due - time.monotonic()
        if delay > 0 and self._stop.wait(delay):
            return None
        return None if self._stop.is_set() else index

    def _client(self) -> None:
        session = requests.Session()
        session.trust_env = False
        while True:
            index = self._take()
            if index is None:
                return
            record = self._send(session, index)
            with self._lock:
                self.history.append(record)
            if self.on_deposit is not None and record["kind"] == "deposits" and record["status"] == 202:
                self.on_deposit(index, record["id"])
            if self.on_action is not None and record.get("return_url") and record["status"] == 202:
                self.on_action(index, record["id"], record.get("next_action_url"))

    def _send(self, session: requests.Session, index: int) -> dict[str, Any]:
        key, kind, body = self._bodies[index]
        headers = {"Authorization": f"Api-Key {self.api_key}", "Idempotency-Key": key}
        record: dict[str, Any] = {
            "key": key,
            "kind": kind,
            "country": body["country"],
            "status": None,
            "id": None,
            "ids": [],
            "tries": 0,
            "outcomes": [],
            "replayed": False,
            "sent_at": now_iso(),
            "return_url": "return_url" in body,
        }
        started = time.monotonic()
        for attempt in range(self.config.max_tries):
            record["tries"] = attempt + 1
            try:
                response = session.post(f"{WEB_URL}/api/v1/{kind}", json=body, headers=headers, timeout=(3, 20))
                outcome: Any = response.status_code
            except requests.RequestException as exc:
                response, outcome = None, type(exc).__name__
            record["outcomes"].append(outcome)
            if response is not None and response.status_code == 202:
                answer = response.json()
                txn_id = answer["id"]
                record.update(status=202, id=txn_id, replayed=response.headers.get("Idempotent-Replayed") == "true")
                record["next_action_url"] = (answer.get("next_action") or {}).get("url")
                if txn_id not in record["ids"]:
                    record["ids"].append(txn_id)
                break
            if response is not None and response.status_code < 500 and response.status_code != 429:
                record["status"] = response.status_code  # a definitive refusal
                record["error"] = response.text[:300]
                break
            # A connection error, a timeout, a 5xx or a 429: the same request again, later.
            if time.monotonic() - started > self.config.request_deadline:
                break
            time.sleep(min(0.25 * 2**attempt, 4.0) * random.uniform(0.75, 1.25))
        record["answered_at"] = now_iso()
        record["elapsed_s"] = round(time.monotonic() - started, 3)
        return record
