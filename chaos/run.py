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

This module only parses the options and runs the steps in order; each step has a module of its own:
stack.py (the processes and their environment), load.py (the merchants' requests), refunds.py and
customers.py (the refunds and the pay page's customers), plan.py (which fault when, from the seed),
faults.py (carrying the plan out, restarting what died, healing), settle.py (the canary, the wait
until the stack settles, the webhook receiver's tally), check.py (the safety properties), report.py
(the table and the results files) and timeline.py (the event log).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import signal
import sys
import time
from pathlib import Path

from chaos.check import check, scan_logs, snapshot, task_stats
from chaos.customers import ACTION_SANDBOX, CustomerConfig, Customers
from chaos.faults import Faults
from chaos.load import RETURN_URL_SHARE_ELSEWHERE, Load, LoadConfig
from chaos.plan import fault_plan
from chaos.refunds import RefundConfig, Refunds
from chaos.report import summary_table, write_results
from chaos.settle import canary, received_events, register_webhook, settle, undelivered_count
from chaos.stack import (
    BROKER,
    BROKERS,
    CLIENT_NAME,
    DB_NAME,
    LOG_DIR,
    RABBITMQ_VHOST,
    REDIS_PORT,
    WEB_URL,
    WEBHOOK_PATH,
    ChaosError,
    ChaosStack,
    Timings,
    http_post_json,
    sandbox_url,
    use_broker,
)
from chaos.timeline import Timeline
from harness import Receiver

SHORT_WALL_BUDGET = 175.0
# More time to settle in --short for the customers' actions (at most 3.5 minutes in all): the last
# ones abandoned expire at the action's deadline (Timings.action_deadline) after the load phase.
SHORT_ACTION_EXTRA = 30.0


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
            faults.close()
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
