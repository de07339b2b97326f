"""Paygate's fault-injection ("chaos") run: the production shape under crashes, restarts and bad gateways.

    .venv/bin/python -m chaos.run [--short] [--duration S] [--rate R] [--clients N] [--seed N]
                                       [--worker-nodes N] [--settle-timeout S] [--no-postgres-restart]

1. Start the stack on PostgreSQL (database `paygate_chaos`, recreated) and a private redis-server on
   :6391 (AOF, everysec, started and SIGKILLed by this script only): migrate, seed the demo with the
   sandboxes on :8311-8313 (each with a --state-file), an API key, granian on :8300 (2 workers),
   celery worker node(s) on the payment queues (prefork, concurrency 2), the webhook dispatcher
   (`manage.py run_webhook_dispatcher`), celery beat, as the Procfile runs them; readiness is polled. A webhook
   endpoint for every event type is registered, pointing at a receiver in this process (a real
   HTTP server on loopback), and a canary deposit must complete end to end before the load starts.
2. Drive deposits and withdrawals over DE/GB/US/BR at a steady rate. Every request carries an
   Idempotency-Key; on a connection error, a timeout or a 5xx the client retries the same request
   with the same key (bounded in tries and time), as a merchant would. Every id answered 202 is kept.
   Half the accepted deposits are picked for a refund once completed (chaos/refunds.py): in full,
   in parts or by two refunds racing, followed by one above what remains, which must be refused.
   Every US and GB deposit and a fifth of the others carry `return_url`; the sandbox globex (the US's
   first route, the GB's second) runs in `redirect` mode with an action deadline of 20 s
   (chaos/customers.py): a customer per deposit opens the pay page, follows it to the challenge and
   approves or cancels, or never comes back.
3. Meanwhile inject faults on a seeded random plan: SIGKILL celery pool processes and worker main
   processes (a worker whose main died is started again), SIGKILL + restart Redis (same port, same
   AOF folder), stop + start PostgreSQL, SIGKILL + restart a sandbox (state file), and switch
   sandboxes between ok / flaky / down / error / timeout, with duplicate callbacks and callback
   jitter (out-of-order delivery); SIGKILL + restart the webhook dispatcher, and have the webhook
   receiver answer 503 for a few seconds. A monitor restarts any process that dies unexpectedly
   and reports it.
4. Stop the faults, heal everything (sandboxes `ok`, callbacks on, the receiver answering), wait
   for the stack to settle (no transaction or refund left non-final, no callback left unapplied,
   every event of the run's client at the receiver; or a deadline), then check the database
   against the clients' history, the sandboxes' records (payments and refunds) and what the
   receiver got (chaos/check.py).

Results: a table on stdout and in chaos/results/latest.md (committed); every figure, the history
and the timeline in chaos/results/<timestamp>.json and latest.json (not committed). The exit
status is 1 when a safety property is violated (a lost or double-paid transaction, a completed one
without a matching gateway payment, a refund lost or given twice, an event never delivered, ...),
2 when the run itself could not be carried out.
Logs of every process: chaos/.work/logs/ (chaos-events.jsonl is the fault timeline).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from chaos.check import accepted_answer, check, scan_logs, snapshot, task_stats
from chaos.customers import ACTION_SANDBOX, CustomerConfig, Customers, merchant_return_url
from chaos.refunds import RefundConfig, Refunds
from chaos.stack import (
    BROKER,
    BROKERS,
    CLIENT_NAME,
    DB_NAME,
    LOG_DIR,
    PSYCOPG_DSN,
    RABBITMQ_VHOST,
    REDIS_PORT,
    RESULTS_DIR,
    SANDBOXES,
    WEB_URL,
    WEBHOOK_WORKER,
    ChaosError,
    ChaosStack,
    Timings,
    http_get,
    http_post_json,
    redis_ping,
    sandbox_url,
    use_broker,
    wait_for,
)
from harness import Receiver

COUNTRIES = {
    "DE": ("EUR", {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"}),
    "GB": ("GBP", {"iban": "GB29NWBK60161331926819", "holder_name": "John Smith"}),
    "US": ("USD", {"account_number": "000123456789", "routing_number": "110000000", "holder_name": "Ann Lee"}),
    "BR": ("BRL", {"pix_key": "ana@example.com", "holder_name": "Ana Souza"}),
}
# The path of the run's webhook endpoint on its receiver.
WEBHOOK_PATH = "/hooks/chaos"
# Deposits with return_url (CONTRACT §11), each with a customer behind it: every one of the countries
# routed to chaos.customers.ACTION_SANDBOX (the US first, GB after soapbank), which asks for an action,
# and this share of the others.
ACTION_COUNTRIES = ("US", "GB")
RETURN_URL_SHARE_ELSEWHERE = 0.2
# Seconds, start-up to exit, for --short; the load phase is sized from it.
SHORT_WALL_BUDGET = 175.0
# More time to settle in --short for the customers' actions (at most 3.5 minutes in all): the last
# ones abandoned expire at the action's deadline (Timings.action_deadline) after the load phase.
SHORT_ACTION_EXTRA = 30.0


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# --- the event log ---------------------------------------------------------------------------------


class Timeline:
    """Every fault and notable event, with its offset from the start of the load: a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.t0 = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self.faults: Counter[str] = Counter()
        self._lock = threading.Lock()

    def reset_clock(self) -> None:
        self.t0 = time.monotonic()

    def offset(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def record(self, kind: str, *, fault: bool = False, quiet: bool = False, **details: Any) -> None:
        entry = {"t": self.offset(), "at": now_iso(), "kind": kind, **details}
        with self._lock:
            self.events.append(entry)
            if fault:
                self.faults[kind] += 1
            with open(self.path, "a") as handle:
                handle.write(json.dumps(entry, default=str) + "\n")
        if not quiet:
            extra = " ".join(f"{k}={v}" for k, v in details.items())
            print(f"  [{entry['t']:7.1f}s] {kind} {extra}".rstrip(), flush=True)


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


# --- the faults ------------------------------------------------------------------------------------


@dataclass(order=True)
class PlannedFault:
    at: float
    kind: str = field(compare=False)
    params: dict[str, Any] = field(compare=False, default_factory=dict)


def spread(rng: random.Random, count: int, start: float, end: float, min_gap: float) -> list[float]:
    """`count` random times in [start, end], at least `min_gap` apart where the span allows."""
    if count <= 0:
        return []
    slot = (end - start) / count
    return [round(start + slot * i + rng.uniform(0, max(slot - min_gap, 0.0)), 1) for i in range(count)]


def sandbox_setting(rng: random.Random) -> dict[str, Any]:
    mode = rng.choices(["ok", "flaky", "down", "error", "timeout"], weights=[3, 3, 1, 1.5, 1.5])[0]
    setting: dict[str, Any] = {
        "mode": mode,
        "failure_rate": 0.3,
        "callback": "completed",
        "duplicate_callbacks": rng.random() < 0.5,
        "callback_jitter": round(rng.uniform(0.5, 3.0), 2) if rng.random() < 0.6 else 0.0,
    }
    if mode == "ok" and rng.random() < 0.15:
        setting["callback"] = "failed"  # the gateway fails some payments after accepting them
    return setting


def fault_plan(
    rng: random.Random, *, duration: float, short: bool, worker_nodes: int, postgres: bool, rabbitmq: bool = False
) -> list[PlannedFault]:
    plan: list[PlannedFault] = []
    if rabbitmq:
        # The broker stopped and started again: with publisher confirms and quorum queues, what it
        # confirmed survives; what could not be published meanwhile is left to the sweeps.
        times = [duration * 0.5] if short else spread(rng, 2, 20, duration - 30, 40)
        plan += [PlannedFault(at, "rabbitmq_restart", {"down_for": 2.0}) for at in times]
    codes = sorted(SANDBOXES)
    if short:
        plan.append(
            PlannedFault(
                0.0,
                "sandbox_mode",
                {
                    "code": "acmepay",
                    "mode": "flaky",
                    "failure_rate": 0.3,
                    "duplicate_callbacks": True,
                    "callback_jitter": 0.0,
                },
            )
        )
        plan.append(
            PlannedFault(
                0.0,
                "sandbox_mode",
                {"code": "soapbank", "mode": "ok", "duplicate_callbacks": True, "callback_jitter": 2.0},
            )
        )
        plan.append(
            PlannedFault(
                0.0,
                "sandbox_mode",
                {
                    "code": "globex",
                    "mode": "flaky",
                    "failure_rate": 0.3,
                    "duplicate_callbacks": False,
                    "callback_jitter": 1.5,
                },
            )
        )
        plan.append(PlannedFault(duration * 0.22, "worker_kill", {"target": "child", "node": 1}))
        plan.append(PlannedFault(duration * 0.42, "redis_restart", {"down_for": 2.0}))
        plan.append(PlannedFault(duration * 0.62, "worker_kill", {"target": "main", "node": worker_nodes}))
        # A gateway that fails what it accepted: deposits fail, refunds fail and leave their amount
        # refundable again.
        plan.append(
            PlannedFault(
                round(duration * 0.68, 1),
                "sandbox_mode",
                {"code": "soapbank", "mode": "ok", "callback": "failed", "duplicate_callbacks": True},
            )
        )
        plan.append(
            PlannedFault(round(duration * 0.84, 1), "sandbox_mode", {"code": "soapbank", "callback": "completed"})
        )
        plan += webhook_faults(rng, duration=duration, short=True)
        for at in spread(rng, 4, duration * 0.15, duration * 0.8, 4):
            plan.append(PlannedFault(at, "sandbox_mode", {"code": rng.choice(codes), **sandbox_setting(rng)}))
        return sorted(plan)

    for code in codes:
        plan.append(PlannedFault(0.0, "sandbox_mode", {"code": code, **sandbox_setting(rng)}))
    end = duration - 10
    for at in spread(rng, max(12, int(duration / 18)), 8, end, 4):
        target = "main" if rng.random() < 0.35 else "child"
        plan.append(PlannedFault(at, "worker_kill", {"target": target, "node": rng.randint(1, worker_nodes)}))
    for at in spread(rng, 4, 15, end, 20):
        plan.append(PlannedFault(at, "redis_restart", {"down_for": round(rng.uniform(1.0, 4.0), 1)}))
    if postgres:
        # Longer than a sandbox's callback retries (0.5 + 1 + 2 + 4 s): some callbacks are given
        # up, and only the status look-ups can finish those transactions.
        plan.append(
            PlannedFault(
                round(duration * rng.uniform(0.45, 0.55), 1),
                "postgres_restart",
                {"down_for": round(rng.uniform(8.0, 12.0), 1)},
            )
        )
    # Jepsen-style pauses: a frozen Redis (clients block on it instead of being refused), and a
    # frozen pool process (alive, holding its task, resumed after its attempt looks abandoned).
    plan.append(
        PlannedFault(
            round(duration * rng.uniform(0.25, 0.35), 1), "redis_pause", {"pause_for": round(rng.uniform(5.0, 8.0), 1)}
        )
    )
    for at in spread(rng, 2, 30, end - 30, 20):
        plan.append(
            PlannedFault(
                at,
                "worker_pause",
                {"node": rng.randint(1, worker_nodes), "pause_for": round(rng.uniform(20.0, 30.0), 1)},
            )
        )
    for at in spread(rng, 2, 20, end, 30):
        plan.append(PlannedFault(at, "sandbox_restart", {"code": rng.choice(codes)}))
    for at in spread(rng, int(duration / 8), 5, end, 3):
        plan.append(PlannedFault(at, "sandbox_mode", {"code": rng.choice(codes), **sandbox_setting(rng)}))
    plan += webhook_faults(rng, duration=duration, short=False)
    return sorted(plan)


def webhook_faults(rng: random.Random, *, duration: float, short: bool) -> list[PlannedFault]:
    """The webhook dispatcher SIGKILLed (its claims in flight lapse and are claimed again) and the merchant's
    receiver answering 503 for a while (deliveries retried on the schedule)."""
    if short:
        return [
            PlannedFault(round(duration * 0.1, 1), "receiver_outage", {"down_for": 5.0}),
            PlannedFault(round(duration * 0.3, 1), "webhook_worker_kill"),
        ]
    end = duration - 10
    plan = [PlannedFault(at, "webhook_worker_kill") for at in spread(rng, 2, 10, end, 30)]
    plan += [
        PlannedFault(at, "receiver_outage", {"down_for": round(rng.uniform(5.0, 15.0), 1)})
        for at in spread(rng, 2, 10, end, 30)
    ]
    return plan


class Faults:
    """Carries out the plan in one thread; the monitor (same lock) restarts what died unexpectedly."""

    def __init__(
        self,
        stack: ChaosStack,
        plan: list[PlannedFault],
        timeline: Timeline,
        rng: random.Random,
        receiver: Receiver | None = None,
    ) -> None:
        self.stack = stack
        self.receiver = receiver
        self.plan = plan
        self.timeline = timeline
        self.rng = rng
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)
        self._monitor = threading.Thread(target=self._watch, name="monitor", daemon=True)
        self.unexpected_exits: list[dict[str, Any]] = []
        self.paused: set[int] = set()
        self._restart_at: dict[str, float] = {}
        self.errors: list[str] = []

    def start(self) -> None:
        self._thread.start()
        self._monitor.start()

    def stop_plan(self) -> None:
        """Stop injecting (the monitor keeps watching until `stop_monitor`)."""
        self._stop.set()
        self._thread.join(60)

    def stop_monitor(self) -> None:
        self._stop.set()
        self._monitor_stop = True
        self._monitor.join(10)

    _monitor_stop = False

    def _run(self) -> None:
        t0 = time.monotonic()
        for fault in self.plan:
            delay = t0 + fault.at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            if self._stop.is_set():
                return
            try:
                with self.lock:
                    getattr(self, f"_do_{fault.kind}")(**fault.params)
            except Exception as exc:  # noqa: BLE001 - a fault that could not be injected is reported; the run goes on
                self.errors.append(f"{fault.kind} {fault.params}: {exc!r}")
                self.timeline.record("fault_error", kind_failed=fault.kind, error=repr(exc))

    # Each fault

    def _do_sandbox_mode(self, code: str, **setting: Any) -> None:
        http_post_json(f"{sandbox_url(code)}/_sandbox/mode", setting)
        self.timeline.record("sandbox_mode", code=code, **setting)
        self.timeline.faults[f"sandbox_mode_{setting.get('mode', 'ok')}"] += 1
        if setting.get("duplicate_callbacks"):
            self.timeline.faults["sandbox_duplicate_callbacks_on"] += 1
        if setting.get("callback_jitter"):
            self.timeline.faults["sandbox_callback_jitter_on"] += 1
        if setting.get("callback") == "failed":
            self.timeline.faults["sandbox_callback_failed_on"] += 1

    def _do_worker_kill(self, target: str, node: int) -> None:
        proc = self.stack.procs[f"worker-{node}"]
        if not proc.running():
            self._revive(proc.name, "was down before the kill")
        if target == "child":
            children = proc.children()
            if not children:
                self.timeline.record("worker_kill_skipped", node=node, reason="no pool child found")
                return
            victim = self.rng.choice(children)
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                return
            self.timeline.record("worker_kill_child", fault=True, node=node, pid=victim)
            return
        # The main process: SIGKILL it, then its pool (as an OOM kill of the container would), restart.
        proc.expected_exit = True
        main_pid = proc.pid
        proc.signal_main(signal.SIGKILL)
        proc.signal_group(signal.SIGKILL)
        assert proc.popen is not None
        proc.popen.wait(10)
        self.timeline.record("worker_kill_main", fault=True, node=node, pid=main_pid)
        time.sleep(self.rng.uniform(0.5, 2.0))  # the fault's duration: the node stays down a moment
        proc = self.stack.start_worker_node(node)
        self.timeline.record("worker_restarted", node=node, pid=proc.pid)

    def _do_webhook_worker_kill(self) -> None:
        """SIGKILL the webhook dispatcher (its tries in flight die with it), start it again."""
        proc = self.stack.procs[WEBHOOK_WORKER]
        proc.expected_exit = True
        main_pid = proc.pid
        proc.signal_group(signal.SIGKILL)
        assert proc.popen is not None
        proc.popen.wait(10)
        self.timeline.record("webhook_worker_kill", fault=True, pid=main_pid)
        time.sleep(self.rng.uniform(0.5, 2.0))
        proc = self.stack.start_webhook_worker()
        self.timeline.record("webhook_worker_restarted", pid=proc.pid)

    def _do_receiver_outage(self, down_for: float) -> None:
        """The merchant's endpoint answers 503 for a while."""
        if self.receiver is None:
            return
        self.receiver.on(WEBHOOK_PATH, 503)
        self.timeline.record("receiver_outage", fault=True, down_for=down_for)
        try:
            time.sleep(down_for)
        finally:
            self.receiver.on(WEBHOOK_PATH, 200)
        self.timeline.record("receiver_up")

    def _do_redis_restart(self, down_for: float) -> None:
        proc = self.stack.procs["redis"]
        proc.expected_exit = True
        proc.signal_group(signal.SIGKILL)
        assert proc.popen is not None
        proc.popen.wait(10)
        self.timeline.record("redis_restart", fault=True, down_for=down_for)
        time.sleep(down_for)
        self.stack.start_redis()
        self.timeline.record("redis_up")

    def _do_rabbitmq_restart(self, down_for: float) -> None:
        self.timeline.record("rabbitmq_restart", fault=True, down_for=down_for)
        started = time.monotonic()
        self.stack.rabbitmq_stop()
        self.timeline.record("rabbitmq_down", stop_seconds=round(time.monotonic() - started, 1))
        time.sleep(down_for)
        started = time.monotonic()
        self.stack.rabbitmq_start()
        self.timeline.record("rabbitmq_up", start_seconds=round(time.monotonic() - started, 1))

    def _do_redis_pause(self, pause_for: float) -> None:
        proc = self.stack.procs["redis"]
        proc.signal_main(signal.SIGSTOP)
        self.timeline.record("redis_pause", fault=True, pause_for=pause_for)
        try:
            time.sleep(pause_for)
        finally:
            proc.signal_main(signal.SIGCONT)
        self.timeline.record("redis_resumed")

    def _do_worker_pause(self, node: int, pause_for: float) -> None:
        proc = self.stack.procs[f"worker-{node}"]
        children = proc.children()
        if not children:
            self.timeline.record("worker_pause_skipped", node=node, reason="no pool child found")
            return
        victim = self.rng.choice(children)
        try:
            os.kill(victim, signal.SIGSTOP)
        except ProcessLookupError:
            return
        self.paused.add(victim)
        self.timeline.record("worker_pause", fault=True, node=node, pid=victim, pause_for=pause_for)

        def resume() -> None:
            self._resume(victim)
            self.timeline.record("worker_resumed", node=node, pid=victim)

        timer = threading.Timer(pause_for, resume)
        timer.daemon = True
        timer.start()

    def _resume(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        self.paused.discard(pid)

    def _do_postgres_restart(self, down_for: float) -> None:
        self.timeline.record("postgres_stopping", down_for=down_for)
        self.stack.postgres_stop()
        self.timeline.record("postgres_restart", fault=True, down_for=down_for)
        time.sleep(down_for)
        self.stack.postgres_start()
        self.timeline.record("postgres_up")

    def _do_sandbox_restart(self, code: str) -> None:
        proc = self.stack.procs[f"sandbox-{code}"]
        mode = http_get(f"{sandbox_url(code)}/_sandbox/mode")[1]
        proc.expected_exit = True
        proc.signal_group(signal.SIGKILL)
        assert proc.popen is not None
        proc.popen.wait(10)
        self.timeline.record("sandbox_restart", fault=True, code=code)
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.stack.start_chaos_sandbox(code)
        wait_for(
            lambda: http_get(f"{sandbox_url(code)}/_sandbox/mode")[0] == 200,
            timeout=30,
            what=f"sandbox {code} after its restart",
        )
        if mode:  # a restarted sandbox starts in `ok`: keep the behaviour it had
            http_post_json(f"{sandbox_url(code)}/_sandbox/mode", json.loads(mode))
        self.timeline.record("sandbox_up", code=code)

    # The monitor

    def _revive(self, name: str, why: str) -> None:
        proc = self.stack.procs[name]
        self.unexpected_exits.append(
            {
                "t": self.timeline.offset(),
                "process": name,
                "returncode": proc.returncode(),
                "why": why,
                "log_tail": proc.log_tail(15),
            }
        )
        self.timeline.record("unexpected_exit", process=name, returncode=proc.returncode())
        self.stack.restart(name)

    def _watch(self) -> None:
        while not self._monitor_stop:
            time.sleep(1.0)
            with self.lock:
                for name, proc in list(self.stack.procs.items()):
                    if proc.running() or proc.expected_exit or proc.popen is None:
                        continue
                    # Restart at most every 5 s per process, so a crash loop does not spin.
                    if time.monotonic() < self._restart_at.get(name, 0.0):
                        continue
                    self._restart_at[name] = time.monotonic() + 5.0
                    try:
                        self._revive(name, "exited on its own")
                    except Exception as exc:  # noqa: BLE001 - reported; the monitor tries again later
                        self.errors.append(f"restart of {name}: {exc!r}")

    def heal(self) -> None:
        """Everything up and every sandbox `ok` with callbacks on, no duplicates, no jitter."""
        with self.lock:
            for pid in list(self.paused):
                self._resume(pid)
            if self.receiver is not None:
                self.receiver.on(WEBHOOK_PATH, 200)
            if "redis" in self.stack.procs:
                self.stack.procs["redis"].signal_main(signal.SIGCONT)
            if self.stack.postgres_stopped:
                self.stack.postgres_start()
            if self.stack.rabbitmq_stopped:
                self.stack.rabbitmq_start()
            if not redis_ping():
                self.stack.start_redis()
            for name, proc in list(self.stack.procs.items()):
                if not proc.running():
                    self.stack.restart(name)
                    self.timeline.record("healed", process=name)
            for code in SANDBOXES:
                wait_for(
                    lambda code=code: http_get(f"{sandbox_url(code)}/_sandbox/mode")[0] == 200,
                    timeout=30,
                    what=f"sandbox {code}",
                )
                http_post_json(
                    f"{sandbox_url(code)}/_sandbox/mode",
                    {"mode": "ok", "callback": "completed", "duplicate_callbacks": False, "callback_jitter": 0.0},
                )
        self.timeline.record("healed_all")


# --- waiting for the stack ---------------------------------------------------------------------------


def db_progress() -> dict[str, int] | None:
    """Non-final transactions and refunds and unapplied callbacks, or None while the database cannot be read."""
    import psycopg

    try:
        with psycopg.connect(PSYCOPG_DSN, connect_timeout=3) as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM payments_transaction WHERE status IN ('pending', 'processing', 'requires_action')"
            ).fetchone()[0]
            unapplied = conn.execute(
                "SELECT count(*) FROM callbacks_callbackevent WHERE result = 'received'"
            ).fetchone()[0]
            total = conn.execute("SELECT count(*) FROM payments_transaction").fetchone()[0]
            refunds_waiting = conn.execute(
                "SELECT count(*) FROM payments_refund WHERE status IN ('pending', 'processing')"
            ).fetchone()[0]
    except psycopg.Error:
        return None
    return {"waiting": waiting, "unapplied": unapplied, "total": total, "refunds_waiting": refunds_waiting}


def _settled(progress: dict[str, int] | None) -> bool:
    return progress is not None and not (progress["waiting"] or progress["unapplied"] or progress["refunds_waiting"])


def client_event_ids(client_name: str) -> set[str] | None:
    """The ids of the client's events (as its webhooks carry them), or None while the database cannot be read."""
    import psycopg

    try:
        with psycopg.connect(PSYCOPG_DSN, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT e.uid FROM payments_event e JOIN payments_apiclient c ON c.id = e.client_id WHERE c.name = %s",
                (client_name,),
            ).fetchall()
    except psycopg.Error:
        return None
    return {f"evt_{uid.hex}" for (uid,) in rows}


def callbacks_delivered() -> int:
    total = 0
    for code in SANDBOXES:
        status, body = http_get(f"{sandbox_url(code)}/_sandbox/payments", timeout=10)
        if status == 200:
            total += sum(int(p.get("callbacks_delivered") or 0) for p in json.loads(body)["payments"])
    return total


def settle(timeout: float, timeline: Timeline, undelivered: Callable[[], int | None] | None = None) -> dict[str, Any]:
    """Poll until no transaction or refund is waiting and no callback is unapplied (then a short quiet
    period), and, with `undelivered`, until it counts no event left to deliver; or the deadline."""
    started = time.monotonic()
    deadline = started + timeout
    last_print = 0.0
    progress = None
    while time.monotonic() < deadline:
        progress = db_progress()
        if _settled(progress):
            break
        if time.monotonic() - last_print > 10:
            last_print = time.monotonic()
            print(f"  settling: {progress}", flush=True)
        time.sleep(1.0)
    settled = _settled(progress)
    # Late copies of duplicated or jittered callbacks: wait until deliveries stop changing (bounded).
    quiet_deadline = min(time.monotonic() + 15.0, deadline + 15.0)
    previous = callbacks_delivered()
    while time.monotonic() < quiet_deadline:
        time.sleep(2.0)
        current = callbacks_delivered()
        if current == previous:
            break
        previous = current
    # Webhook deliveries drain on their own worker; the last events were written just now.
    left = None
    webhooks_seconds = 0.0
    if undelivered is not None:
        drain_started = time.monotonic()
        drain_deadline = max(deadline, time.monotonic() + 10.0)
        while True:
            left = undelivered()
            if left == 0 or time.monotonic() >= drain_deadline:
                break
            if time.monotonic() - last_print > 10:
                last_print = time.monotonic()
                print(f"  settling: {left} events not yet delivered to the webhook receiver", flush=True)
            time.sleep(1.0)
        webhooks_seconds = round(time.monotonic() - drain_started, 1)
        settled = settled and left == 0
    elapsed = round(time.monotonic() - started, 1)
    timeline.record(
        "settled" if settled else "settle_deadline", seconds=elapsed, progress=progress, events_undelivered=left
    )
    return {
        "settled": settled,
        "seconds": elapsed,
        "last_progress": progress,
        "events_undelivered": left,
        "webhooks_drain_seconds": webhooks_seconds,
    }


def register_webhook(api_key: str, url: str) -> str:
    """The merchant's endpoint for every event type; its signing secret."""
    response = requests.post(
        f"{WEB_URL}/api/v1/webhook-endpoints",
        json={"url": url, "events": ["*"]},
        headers={"Authorization": f"Api-Key {api_key}"},
        timeout=10,
    )
    if response.status_code != 201:
        raise ChaosError(f"registering the webhook endpoint answered {response.status_code}: {response.text[:300]}")
    return str(response.json()["secret"])


def received_events(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """One entry per POST the receiver got: the header's and the body's event id, the signature's check,
    what the receiver answered."""
    items = []
    for item in receiver.at(WEBHOOK_PATH):
        headers = {name.lower(): value for name, value in item.headers.items()}
        try:
            body = item.json()
            body_id, event_type = body.get("id"), body.get("type")
        except (ValueError, AttributeError):
            body_id = event_type = None
        items.append(
            {
                "id": headers.get("paygate-event-id"),
                "body_id": body_id,
                "type": event_type,
                "signature_ok": item.signature_valid(secret),
                "answer": item.answer,
            }
        )
    return items


def undelivered_count(receiver: Receiver) -> int | None:
    """The client's events that the receiver has not got yet (None while the database cannot be read)."""
    ids = client_event_ids(CLIENT_NAME)
    if ids is None:
        return None
    got = set()
    for item in receiver.at(WEBHOOK_PATH):
        if accepted_answer(item.answer):
            got.add({name.lower(): value for name, value in item.headers.items()}.get("paygate-event-id"))
    return len(ids - got)


def canary(api_key: str, timeout: float = 60.0) -> float:
    """One deposit end to end (API, worker, sandbox, callback): proves the stack is ready."""
    started = time.monotonic()
    headers = {"Authorization": f"Api-Key {api_key}", "Idempotency-Key": f"chaos-canary-{uuid.uuid4().hex}"}
    body = {
        "customer_id": "cus_canary",
        "country": "DE",
        "currency": "EUR",
        "amount": "1.00",
        "payment_details": COUNTRIES["DE"][1],
        "metadata": {"canary": True},
    }
    session = requests.Session()
    session.trust_env = False
    response = session.post(f"{WEB_URL}/api/v1/deposits", json=body, headers=headers, timeout=10)
    if response.status_code != 202:
        raise ChaosError(f"canary deposit answered {response.status_code}: {response.text[:300]}")
    txn_id = response.json()["id"]

    def final() -> str | None:
        status = session.get(f"{WEB_URL}/api/v1/transactions/{txn_id}", headers=headers, timeout=5).json()["status"]
        return status if status in ("completed", "failed") else None

    status = wait_for(final, timeout=timeout, what="the canary deposit to finish", interval=0.2)
    if status != "completed":
        raise ChaosError(f"the canary deposit ended {status}")
    return round(time.monotonic() - started, 2)


# --- reporting -----------------------------------------------------------------------------------------


def summary_table(result: dict[str, Any]) -> str:
    counts, violations = result["check"]["counts"], result["check"]["violations"]
    rows: list[tuple[str, Any]] = [
        ("mode", result["mode"]),
        ("broker", result.get("broker", "Redis")),
        ("wall time (s)", result["wall_seconds"]),
        (
            "load (s) / rate (/s) / clients",
            f"{result['config']['duration']} / {result['config']['rate']} / {result['config']['clients']}",
        ),
        ("requests sent", counts["requests"]),
        ("accepted (202)", counts["accepted"]),
        ("  of which after client retries", counts["accepted_after_retries"]),
        ("refused (4xx)", counts["rejected_by_status"] or 0),
        ("client gave up (no answer)", counts["client_gave_up"]),
        ("transactions in DB", counts["transactions_in_db"]),
        ("completed", counts["completed"]),
        ("failed", counts["failed"]),
    ]
    rows += [(f"  failed: {reason}", n) for reason, n in sorted(counts["failed_by_reason"].items())]
    rows.append(("still waiting", counts["waiting"]))
    rows += [(f"  {reason}", n) for reason, n in sorted(counts["waiting_by_reason"].items())]
    rows += [
        ("stuck (overdue, unexplained)", counts["stuck"]),
        ("LOST", counts["lost"]),
        ("DOUBLE PAID", counts["double_paid"]),
        ("completed w/o matching gateway payment", violations["completed_unmatched"]),
        ("paid at gateway but failed (not expired)", violations["paid_but_failed"]),
        ("paid at gateway, expired (for review)", counts["paid_but_expired_for_review"]),
        ("idempotency anomalies", violations["idempotency"]),
        ("callbacks acked by Paygate, not stored", violations["callback_acked_not_stored"]),
        ("callbacks applied twice", violations["callback_applied_twice"]),
        (
            "callback events stored / by result",
            f"{counts['callback_events_stored']} {counts['callback_events_by_result']}",
        ),
        ("callbacks flagged for review", counts["callback_events_flagged"] or 0),
        ("callbacks unapplied", counts["callback_events_unapplied"]),
        ("duplicate callbacks absorbed (sandbox vs DB)", counts["duplicate_callbacks_absorbed"]),
        ("duplicate callbacks (metric)", counts["duplicate_callbacks_metric"]),
        ("attempts by outcome", counts["attempts_by_outcome"]),
        *refund_rows(result["check"]),
        *webhook_rows(result["check"]),
        *action_rows(result["check"]),
        ("unexpected process exits", len(result["unexpected_exits"])),
        ("task runs (from worker logs)", result["work"]["task_runs"]),
        (
            "  no-gateway polls / gateway answers / look-ups",
            " / ".join(
                str(result["work"][key]) for key in ("no_gateway_polls", "gateway_calls_answered", "lookups_answered")
            ),
        ),
    ]
    rows += [(f"fault: {kind}", n) for kind, n in sorted(result["faults"].items())]
    rows.append(("settled", f"{result['settle']['settled']} after {result['settle']['seconds']}s"))
    rows.append(
        (
            "RESULT",
            "OK"
            if result["check"]["ok"]
            else "VIOLATIONS: " + ", ".join(f"{k}={v}" for k, v in violations.items() if v),
        )
    )
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label.ljust(width)}  {value}" for label, value in rows)


def refund_rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    if "refunds" not in report:
        return []
    counts, violations = report["refunds"]["counts"], report["violations"]
    rows: list[tuple[str, Any]] = [
        ("refund requests sent", counts["requests"]),
        ("  accepted (202)", counts["accepted"]),
        ("  refused as expected (422 above the remainder)", counts["refused_as_expected"]),
        ("  above the remainder, accepted: one had failed", counts["exceeds_accepted_after_a_failure"]),
        ("  client gave up (no answer)", counts["client_gave_up"]),
        ("  refused though refundable", violations["refund_wrongly_refused"]),
        ("refunds in DB / by status", f"{counts['in_db']} {counts['by_status']}"),
    ]
    rows += [(f"  refund failed: {reason}", n) for reason, n in sorted(counts["failed_by_reason"].items())]
    rows.append(("refunds still waiting", counts["waiting"]))
    rows += [(f"  {reason}", n) for reason, n in sorted(counts["waiting_by_reason"].items())]
    rows += [
        ("REFUNDS LOST (missing or stuck)", violations["refunds_lost"] + violations["refunds_stuck"]),
        ("REFUNDED TWICE", violations["refunded_twice"]),
        (
            "refunds above the deposit (DB) / payment (gateway)",
            f"{violations['refunds_above_deposit']} / {violations['gateway_refunds_above_payment']}",
        ),
        ("refund succeeded w/o one gateway refund", violations["refund_succeeded_unmatched"]),
        ("refunded at gateway but failed (not expired)", violations["refunded_but_failed"]),
        ("refunded at gateway, expired (for review)", counts["refunded_but_expired_for_review"]),
        ("refund references unknown or misplaced", violations["refund_reference_mismatch"]),
        ("refund idempotency anomalies", violations["refund_idempotency"]),
        ("refunds of what is not refundable", violations["refund_not_allowed"]),
        (
            "gateway refunds / by status",
            f"{counts['gateway_refunds']} {counts['gateway_refunds_by_status']}",
        ),
        ("refund re-sends absorbed by reference", counts["resends_absorbed_by_reference"]),
        ("refund attempts by outcome", counts["attempts_by_outcome"]),
    ]
    return rows


def webhook_rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    if "webhooks" not in report:
        return []
    counts, violations = report["webhooks"]["counts"], report["violations"]
    return [
        ("webhook events (client's, in DB)", counts["events_in_db"]),
        ("  received at least once", counts["events_received"]),
        (
            "  received more than once (extra copies)",
            f"{counts['events_received_more_than_once']} ({counts['extra_copies']})",
        ),
        ("  POSTs the receiver refused (its outages)", counts["posts_refused_by_receiver"]),
        ("EVENTS UNDELIVERED", violations["events_undelivered"]),
        (
            "  received, not in DB / bad signature or id",
            f"{violations['events_phantom']} / {violations['webhook_bad_deliveries']}",
        ),
        ("  deliveries by status", counts["deliveries_by_status"]),
        ("  delivery attempts by result", counts["delivery_attempts_by_result"]),
    ]


def action_rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    if "actions" not in report:
        return []
    counts, violations = report["actions"]["counts"], report["violations"]
    return [
        ("deposits with return_url (accepted)", counts["with_return_url"]),
        ("  customers by behaviour", counts["customers_by_behaviour"]),
        ("  customers by outcome", counts["customers_by_outcome"]),
        (
            "  reached requires_action / of which without a customer",
            f"{counts['reached_requires_action']} / {counts['reached_without_customer']}",
        ),
        ("  by final status", counts["actions_by_final"]),
        ("FAILED OVER FROM requires_action", violations["failed_over_from_action"]),
        (
            "approved, not completed / cancelled, not cancelled",
            f"{violations['approved_not_completed']} / {violations['cancelled_not_cancelled']}",
        ),
        ("NOT ACTED ON, NOT EXPIRED AT THE DEADLINE", violations["abandoned_not_expired"]),
        ("  expired after the deadline by (s): min / max", counts["expired_after_deadline_s"]),
        (
            "redirects to an unexpected address / w/o transaction_id",
            f"{violations['redirected_elsewhere']} / {violations['merchant_redirect_without_id']}",
        ),
    ]


def write_results(result: dict[str, Any], table: str) -> Path:
    """Every figure in <timestamp>.json and latest.json (ignored by git); the table in latest.md (kept)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"{stamp}.json"
    summary = (
        f"# Paygate fault-injection run — {stamp} UTC\n\n"
        f"`{result['command']}`, seed {result['seed']}. Every figure, the clients' history and the fault "
        "timeline are in `chaos/results/latest.json` beside this file (not committed).\n\n"
        f"```\n{table}\n```\n"
    )
    for target, text in (
        (path, json.dumps(result, indent=1, default=str)),
        (RESULTS_DIR / "latest.json", None),
        (RESULTS_DIR / "latest.md", summary),
    ):
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text if text is not None else path.read_text())
        tmp.replace(target)
    return path


# --- main ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--short",
        action="store_true",
        help="CI mode: at most about 3.5 minutes in all; a worker kill, a Redis restart, flaky/duplicate/jitter, "
        "customers on the pay page",
    )
    parser.add_argument("--duration", type=float, help="seconds of load and faults (default 240, --short 70)")
    parser.add_argument("--rate", type=float, default=4.0, help="new transactions per second (default 4)")
    parser.add_argument("--clients", type=int, default=6, help="concurrent merchant clients (default 6)")
    parser.add_argument("--seed", type=int, help="random seed of the load and the fault plan (default: random)")
    parser.add_argument("--worker-nodes", type=int, default=2, help="celery worker processes (default 2)")
    parser.add_argument("--settle-timeout", type=float, help="max seconds to settle (default 180, --short fits)")
    parser.add_argument("--no-postgres-restart", action="store_true", help="full run without the PostgreSQL restart")
    parser.add_argument(
        "--broker",
        choices=BROKERS,
        default=os.environ.get("CHAOS_BROKER", "redis"),
        help="redis (default; CHAOS_BROKER): the private Redis; amqp: the machine's RabbitMQ, restarted as a fault",
    )
    args = parser.parse_args(argv)
    args.duration_default = args.duration is None
    if args.duration is None:
        args.duration = 70.0 if args.short else 240.0
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**6)
    if not 0 < args.duration <= 3600 or not 0 < args.rate <= 100 or not 1 <= args.clients <= 64:
        parser.error("--duration must be in (0, 3600], --rate in (0, 100], --clients in [1, 64]")
    if not 1 <= args.worker_nodes <= 4:
        parser.error("--worker-nodes must be between 1 and 4")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    use_broker(args.broker)
    wall_start = time.monotonic()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    rng = random.Random(args.seed)
    timings = Timings(no_gateway_deadline=60 if args.short else 120)
    stack = ChaosStack(timings=timings, worker_nodes=args.worker_nodes)
    mode = "short" if args.short else "full"
    print(
        f"==> Paygate chaos run ({mode}): seed {args.seed}, {args.duration:.0f}s of load at {args.rate}/s, "
        f"logs in {LOG_DIR.relative_to(Path.cwd()) if LOG_DIR.is_relative_to(Path.cwd()) else LOG_DIR}",
        flush=True,
    )
    faults: Faults | None = None
    load: Load | None = None
    refunds: Refunds | None = None
    customers: Customers | None = None
    receiver = Receiver()
    try:
        print(
            f"==> Starting PostgreSQL db {DB_NAME}, private Redis :{REDIS_PORT}"
            f"{', RabbitMQ vhost ' + RABBITMQ_VHOST if BROKER.name == 'amqp' else ''}, sandboxes, web {WEB_URL}, "
            "workers, beat",
            flush=True,
        )
        startup_steps = stack.start_all()
        timeline = Timeline(LOG_DIR / "chaos-events.jsonl")
        # Before the first transaction: every event of the run's client is for this endpoint.
        receiver.start()
        webhook_secret = register_webhook(stack.api_key, receiver.on(WEBHOOK_PATH, 200))
        # The gateway whose payments wait for the customer (a restarted sandbox keeps its mode).
        http_post_json(f"{sandbox_url(ACTION_SANDBOX)}/_sandbox/mode", {"action": "redirect"})
        canary_s = canary(stack.api_key)
        startup_s = round(time.monotonic() - wall_start, 1)
        print(f"    ready in {startup_s}s {startup_steps} (canary deposit completed in {canary_s}s)", flush=True)
        if args.short and args.duration_default:
            # A busy machine starts slowly: shorten the load so the whole run stays within budget,
            # keeping ~65 s to settle (webhook deliveries drain last) and ~20 s to check and tear down.
            args.duration = round(max(min(args.duration, SHORT_WALL_BUDGET - startup_s - 85.0), 30.0), 1)

        plan = fault_plan(
            rng,
            duration=args.duration,
            short=args.short,
            worker_nodes=args.worker_nodes,
            postgres=not args.short and not args.no_postgres_restart,
            rabbitmq=BROKER.name == "amqp",
        )
        load_config = LoadConfig(duration=args.duration, rate=args.rate, clients=args.clients)
        refund_config = RefundConfig(run_id=load_config.run_id, seed=args.seed)
        refunds = Refunds(refund_config, stack.api_key)
        customer_config = CustomerConfig(seed=args.seed + 2)
        customers = Customers(customer_config)
        load = Load(
            load_config,
            stack.api_key,
            rng,
            timeline,
            on_deposit=refunds.offer,
            return_url_rng=random.Random(args.seed + 3),
            on_action=customers.offer,
        )
        faults = Faults(stack, plan, timeline, random.Random(args.seed + 1), receiver=receiver)
        print(f"==> Load and faults for {args.duration:.0f}s ({len(plan)} planned faults)", flush=True)
        timeline.reset_clock()
        timeline.record("load_start", rate=args.rate, clients=args.clients)
        load.start()
        refunds.start()
        faults.start()
        load_phase_end = time.monotonic() + args.duration
        while time.monotonic() < load_phase_end:
            time.sleep(min(10.0, max(load_phase_end - time.monotonic(), 0.0)))
            print(f"  [{timeline.offset():7.1f}s] requests answered: {len(load.history)}", flush=True)
        faults.stop_plan()
        refunds.finish()
        timeline.record("faults_stopped")
        faults.heal()
        # Clients still retrying (e.g. after an outage) finish within their own bound.
        if not load.join(load_config.request_deadline + 30):
            load.stop()
            load.join(10)
        timeline.record("load_done", requests=len(load.history))
        # The refund scenarios under way end; no new one started after the load phase.
        if not refunds.join(refund_config.request_deadline + 30):
            refunds.stop()
            refunds.join(10)
        timeline.record("refunds_done", requests=len(refunds.history))
        if not customers.join(customer_config.patience + 40):
            customers.stop()
            customers.join(10)
        timeline.record("customers_done", customers=len(customers.history))

        if args.settle_timeout is not None:
            settle_timeout = args.settle_timeout
        elif args.short:
            budget = SHORT_WALL_BUDGET + SHORT_ACTION_EXTRA
            settle_timeout = max(budget - (time.monotonic() - wall_start) - 25.0, timings.action_deadline + 15.0)
        else:
            settle_timeout = 180.0
        print(f"==> Settling (up to {settle_timeout:.0f}s)", flush=True)
        settle_result = settle(settle_timeout, timeline, undelivered=lambda: undelivered_count(receiver))
        faults.stop_monitor()

        print("==> Checking the database against the clients' history and the sandboxes' records", flush=True)
        report = check(
            load.history,
            snapshot(CLIENT_NAME),
            refund_history=refunds.history,
            received=received_events(receiver, webhook_secret),
            customers=customers.history,
            action_deadline_slack=timings.sweep_interval + timings.sweep_grace + 15.0,
        )
        wall = round(time.monotonic() - wall_start, 1)
        result = {
            "mode": mode,
            "broker": "RabbitMQ (quorum queues, publisher confirms)" if BROKER.name == "amqp" else "Redis",
            "command": " ".join([".venv/bin/python", "-m", "chaos.run", *(argv if argv is not None else sys.argv[1:])]),
            "seed": args.seed,
            "started_at": timeline.events[0]["at"] if timeline.events else None,
            "wall_seconds": wall,
            "startup_seconds": startup_s,
            "startup_steps": startup_steps,
            "canary_seconds": canary_s,
            "config": {
                **dataclasses.asdict(load_config),
                "worker_nodes": args.worker_nodes,
                "refunds": dataclasses.asdict(refund_config),
                "customers": {
                    **dataclasses.asdict(customer_config),
                    "return_url_share_elsewhere": RETURN_URL_SHARE_ELSEWHERE,
                },
                "timings": dataclasses.asdict(timings),
            },
            "faults": dict(timeline.faults),
            "fault_errors": faults.errors,
            "unexpected_exits": faults.unexpected_exits,
            "settle": settle_result,
            "check": report,
            "log_errors": scan_logs(LOG_DIR),
            "work": task_stats(LOG_DIR),
            "timeline": timeline.events,
            "history": load.history,
            "refund_history": refunds.history,
            "refund_deposits": refunds.deposits,
            "customers": customers.history,
        }
        table = summary_table(result)
        print(f"\n{table}\n")
        path = write_results(result, table)
        print(f"Results: {path} (latest.json, latest.md); logs: {LOG_DIR}")
        return 0 if report["ok"] else 1
    except ChaosError as exc:
        print(f"chaos run could not be carried out: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; tearing down", file=sys.stderr)
        return 130
    finally:
        if load is not None:
            load.stop()
        if refunds is not None:
            refunds.stop()
        if customers is not None:
            customers.stop()
        receiver.stop()
        if faults is not None:
            faults._stop.set()
            faults._monitor_stop = True
            for pid in list(faults.paused):
                faults._resume(pid)
            if "redis" in stack.procs:
                stack.procs["redis"].signal_main(signal.SIGCONT)
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
