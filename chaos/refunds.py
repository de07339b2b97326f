"""The chaos run's refunds: a merchant giving money back on completed deposits while the faults go on.

The load hands every deposit it got a 202 for to `Refunds.offer`; a share of them (drawn from the
seed and the deposit's index, so a run's choices are reproducible) is refunded in one of these
scenarios, once `GET /api/v1/transactions/{id}` shows the deposit completed (until the load ends:
`finish` starts no scenario more, and lets those under way end):

- `full`: a refund without an amount (all that remains), then 0.01 more, which must be refused
  (422 `amount_exceeds_refundable`);
- `partials`: two partial refunds (20-40% each), then the remainder plus 0.01, which must be
  refused, and in half the cases the rest (a refund without an amount);
- `race`: two refunds of 60% each sent at the same moment: at most one may be accepted.

Every request carries its own Idempotency-Key; a connection error, a timeout, a 5xx or a 429 is
retried with the same key and body (bounded in tries and time), as the deposits are. Each request
is one record in `history`, with what the merchant expected (`accepted`, `exceeds` or `race`) and
the answer it got; chaos/check.py judges them against the database and the gateways' records.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import requests

from chaos.stack import WEB_URL

SCENARIOS = ("full", "partials", "race")
SCENARIO_WEIGHTS = (3, 4, 2)
CENT = Decimal("0.01")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class RefundConfig:
    run_id: str
    seed: int
    share: float = 0.5  # of the accepted deposits
    threads: int = 6
    max_tries: int = 30
    request_deadline: float = 60.0
    # How long a picked deposit may take to complete before it is left unrefunded.
    completion_wait: float = 60.0
    poll_interval: float = 1.0


@dataclass(order=True)
class _Item:
    due: float
    index: int
    txn_id: str = field(compare=False)
    scenario: str = field(compare=False)
    fractions: tuple[float, float] = field(compare=False)
    send_rest: bool = field(compare=False)
    offered: float = field(compare=False)


def cents(value: Decimal) -> Decimal:
    return max(value.quantize(CENT, rounding=ROUND_HALF_UP), CENT)


class Refunds:
    """Refund scenarios on completed deposits, on a few threads of their own."""

    def __init__(self, config: RefundConfig, api_key: str) -> None:
        self.config = config
        self.api_key = api_key
        self.history: list[dict[str, Any]] = []  # one record per refund request
        self.deposits: list[dict[str, Any]] = []  # one per deposit picked for a refund, with what became of it
        self._queue: list[_Item] = []
        self._cond = threading.Condition()
        self._finishing = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- intake ---

    def offer(self, index: int, txn_id: str) -> None:
        """A deposit the API accepted (from the load's client threads): maybe refund it."""
        if self._finishing:
            return
        rng = random.Random(f"{self.config.seed}:refund:{index}")
        if rng.random() >= self.config.share:
            return
        scenario = rng.choices(SCENARIOS, weights=SCENARIO_WEIGHTS)[0]
        fractions = (rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.4))
        now = time.monotonic()
        item = _Item(now + 1.0, index, txn_id, scenario, fractions, rng.random() < 0.5, now)
        with self._cond:
            heapq.heappush(self._queue, item)
            self._cond.notify()

    def start(self) -> None:
        for number in range(self.config.threads):
            thread = threading.Thread(target=self._worker, name=f"refunds-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def finish(self) -> None:
        """The run's load is over: no scenario starts any more (the deposits still queued are left
        unrefunded), and the threads end once the scenarios under way are done."""
        with self._cond:
            self._finishing = True
            for item in self._queue:
                self.deposits.append(
                    {"index": item.index, "id": item.txn_id, "scenario": item.scenario, "outcome": "not_started"}
                )
            self._queue.clear()
            self._cond.notify_all()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(thread.is_alive() for thread in self._threads)

    def _next(self) -> _Item | None:
        with self._cond:
            while not self._stop.is_set():
                if self._queue and self._queue[0].due <= time.monotonic():
                    return heapq.heappop(self._queue)
                if self._finishing and not self._queue:
                    return None
                wait = self._queue[0].due - time.monotonic() if self._queue else 1.0
                self._cond.wait(max(min(wait, 1.0), 0.01))
            return None

    def _requeue(self, item: _Item, delay: float) -> None:
        item.due = time.monotonic() + delay
        with self._cond:
            heapq.heappush(self._queue, item)
            self._cond.notify()

    def _worker(self) -> None:
        session = self._session()
        while True:
            item = self._next()
            if item is None:
                return
            self._handle(session, item)

    @staticmethod
    def _session() -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        return session

    def _headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Api-Key {self.api_key}"}
        if key:
            headers["Idempotency-Key"] = key
        return headers

    # --- one deposit ---

    def _handle(self, session: requests.Session, item: _Item) -> None:
        try:
            response = session.get(
                f"{WEB_URL}/api/v1/transactions/{item.txn_id}", headers=self._headers(), timeout=(3, 10)
            )
            txn = response.json() if response.status_code == 200 else None
        except (requests.RequestException, ValueError):
            txn = None
        status = txn["status"] if txn else None
        if status == "completed":
            assert txn is not None
            self._scenario(session, item, Decimal(txn["amount"]))
            return
        if status == "failed":
            self._picked(item, "deposit_failed")
            return
        if time.monotonic() - item.offered > self.config.completion_wait or self._finishing or self._stop.is_set():
            self._picked(item, "not_completed_in_time", last_status=status)
            return
        self._requeue(item, self.config.poll_interval)

    def _picked(self, item: _Item, outcome: str, **details: Any) -> None:
        with self._cond:
            self.deposits.append(
                {"index": item.index, "id": item.txn_id, "scenario": item.scenario, "outcome": outcome, **details}
            )

    def _scenario(self, session: requests.Session, item: _Item, amount: Decimal) -> None:
        self._picked(item, "refunded", amount=str(amount))

        def send(step: str, value: Decimal | None, expect: str, sess: requests.Session = session) -> dict[str, Any]:
            return self._send(sess, item, step, value, expect)

        if item.scenario == "full":
            first = send("full", None, "accepted")
            if first["status"] == 202:
                send("over", CENT, "exceeds")
        elif item.scenario == "partials":
            parts = [cents(amount * Decimal(str(round(f, 4)))) for f in item.fractions]
            accepted = Decimal(0)
            for number, part in enumerate(parts, start=1):
                record = send(f"partial-{number}", part, "accepted")
                if record["status"] == 202:
                    accepted += Decimal(record["amount"])
            send("over", amount - accepted + CENT, "exceeds")
            if item.send_rest:
                send("rest", None, "accepted")
        else:  # race: two threads, one barrier
            part = cents(amount * Decimal("0.6"))
            barrier = threading.Barrier(2)

            def racer(step: str, sess: requests.Session) -> None:
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout=10)
                send(step, part, "race", sess)

            other = threading.Thread(target=racer, args=("race-b", self._session()), daemon=True)
            other.start()
            racer("race-a", session)
            other.join(self.config.request_deadline + 30)

    def _send(
        self, session: requests.Session, item: _Item, step: str, amount: Decimal | None, expect: str
    ) -> dict[str, Any]:
        key = f"chaos-{self.config.run_id}-refund-{item.index:06d}-{step}"
        body: dict[str, Any] = {"reason": f"chaos {item.scenario} {step}"}
        if amount is not None:
            body["amount"] = str(amount)
        record: dict[str, Any] = {
            "key": key,
            "transaction_id": item.txn_id,
            "scenario": item.scenario,
            "step": step,
            "expect": expect,
            "amount_sent": body.get("amount"),
            "status": None,
            "code": None,
            "id": None,
            "amount": None,
            "ids": [],
            "tries": 0,
            "outcomes": [],
            "sent_at": now_iso(),
        }
        started = time.monotonic()
        url = f"{WEB_URL}/api/v1/transactions/{item.txn_id}/refunds"
        for attempt in range(self.config.max_tries):
            record["tries"] = attempt + 1
            try:
                response = session.post(url, json=body, headers=self._headers(key), timeout=(3, 20))
                outcome: Any = response.status_code
            except requests.RequestException as exc:
                response, outcome = None, type(exc).__name__
            record["outcomes"].append(outcome)
            if response is not None and response.status_code == 202:
                answer = response.json()
                record.update(status=202, id=answer["id"], amount=answer["amount"])
                if answer["id"] not in record["ids"]:
                    record["ids"].append(answer["id"])
                break
            if response is not None and response.status_code < 500 and response.status_code != 429:
                record["status"] = response.status_code  # a definitive refusal
                try:
                    record["code"] = response.json()["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    record["code"] = response.text[:200]
                break
            if time.monotonic() - started > self.config.request_deadline or self._stop.is_set():
                break
            time.sleep(min(0.25 * 2**attempt, 4.0) * random.uniform(0.75, 1.25))
        record["answered_at"] = now_iso()
        record["elapsed_s"] = round(time.monotonic() - started, 3)
        with self._cond:
            self.history.append(record)
        return record
