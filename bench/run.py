"""Paygate's benchmark: the production shape on PostgreSQL + Redis (or RabbitMQ), driven over HTTP, against a
floor of the same shape.

    .venv/bin/python -m bench.run [--n 2000] [--concurrency 16] [--web-workers 2] [--worker-processes 1]
                                  [--worker-concurrency 4] [--broker redis|amqp] [--quick | --smoke] [--scaling]

The floor (bench/floor/) is a bare pipeline of the same shape as a transaction: a create that
validates and INSERTs (autocommit) and publishes a task after commit; the task does one UPDATE and
one HTTP call to a sandbox gateway (the same sandbox server, its own process); the sandbox's callback
hits a bare endpoint that does one UPDATE. No authentication, idempotency, routing, locks,
encryption or events. It runs on its own database, with the same granian and Celery flags.

One configuration runs, in order, on fresh `paygate_bench` / `paygate_bench_floor` databases and a fresh
broker (Redis db 14, or a RabbitMQ vhost), the processes through the shared harness (harness/):

1. set-up: migrations (the floor's on its database), the demo seed on the bench sandbox ports, an API
   key; the three sandboxes and the floor's (`--callback-delay 0`), Paygate's web (bin/web, :8200)
   and the floor's (:8201, same processes x threads, DJANGO_SETTINGS_MODULE=bench.floor_settings);
2. `micro`: API-key verification, Fernet and gateway row costs per call (pytest-benchmark);
3. celery beat, Paygate's workers and the floor's (same processes x concurrency, its own queue);
4. `low_load`: closed loops of single transactions, each waited for until final, Paygate's and the
   floor's interleaved in rounds: the overhead without any queueing;
5. `mixed`: N Paygate creates at the given concurrency, waited for until final: finished/s, CPU
   per transaction by process kind, PostgreSQL counters per transaction;
6. `floor_e2e`: the same for the floor;
6b. `webhooks`: `mixed` again with one webhook endpoint subscribed to every event, `*` (a receiver
   in this process, on loopback): the extra cost of a delivery per transaction, and the deliveries
   checked (each completed transaction's event received, signed, with its lag after the commit);
6c. `paypage`: a sandbox in `redirect` mode; customers back from it, one at a time: the return
   endpoint's time to its redirect to the merchant (the look-up included); the pay page's requests
   per second (final, waiting for the customer, not yet routed) (bench/paypage.py);
7. `api_only` + `drain` + `floor_drain`: both sides' workers stopped, N creates to each, interleaved
   in rounds; then each side's workers drain its backlog;
8. correctness against the sandboxes' own records;
9. `statements`: with statement logging on for both databases (processes restarted to take it),
   K transactions one at a time on each side: SQL statements per transaction, by verb.

`--smoke` runs set-up, low_load, mixed and floor_e2e with N=40 (about a minute; CI runs it) and
writes its results under bench/.work/smoke/ instead of bench/results/.

Results: bench/results/latest.md and the PNG charts (kept); every figure in latest.json and
<timestamp>.json, per-request records in raw/ (not committed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench import measure, report, stack
from bench.phases import Config, run_config
from bench.stack import BenchError

ALL_PHASES = frozenset({"micro", "low_load", "mixed", "floor_e2e", "webhooks", "paypage", "api_only", "statements"})
SMOKE_PHASES = frozenset({"low_load", "mixed", "floor_e2e"})
THROUGHPUT_PHASES = frozenset({"mixed", "floor_e2e", "api_only"})
SCALING_MATRIX = ((1, 2), (1, 4), (2, 2), (2, 4))  # (worker processes, web processes)


def _config_from(args: argparse.Namespace) -> Config:
    quick, smoke = args.quick, args.smoke
    return Config(
        n=args.n if args.n is not None else (40 if smoke else 200 if quick else 2000),
        concurrency=args.concurrency,
        web_workers=args.web_workers,
        web_threads=args.web_threads,
        worker_processes=args.worker_processes,
        worker_concurrency=args.worker_concurrency,
        low_load_n=args.low_load_n if args.low_load_n is not None else (4 if smoke else 20 if quick else 100),
        final_timeout=args.final_timeout,
        micro_quick=quick or smoke,
        broker=args.broker,
        statements_n=20 if quick or smoke else 50,
        paypage_n=args.paypage_n if args.paypage_n is not None else (20 if quick or smoke else 50),
        paypage_requests=400 if quick or smoke else 1000,
        pg_settle_s=0.0 if smoke else 11.0,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Paygate benchmark (see bench/README.md).")
    parser.add_argument("--n", type=int, default=None, help="transactions per load phase (default 2000; --quick 200)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument(
        "--web-workers",
        type=int,
        default=2,
        help="web processes (bin/web's WEB_CONCURRENCY), Paygate and floor alike (default 2: one per core)",
    )
    parser.add_argument(
        "--web-threads",
        type=int,
        default=4,
        help="threads per web process (bin/web's WEB_THREADS), Paygate and floor alike (default 4)",
    )
    parser.add_argument("--worker-processes", type=int, default=1, help="separate celery worker processes (default 1)")
    parser.add_argument(
        "--worker-concurrency", type=int, default=4, help="prefork children per celery worker process (default 4)"
    )
    parser.add_argument(
        "--low-load-n",
        type=int,
        default=None,
        help="transactions of the closed-loop low-load phase (default 100; --quick 20)",
    )
    parser.add_argument(
        "--paypage-n",
        type=int,
        default=None,
        help="customers returning from the gateway in the paypage phase (default 50; --quick 20)",
    )
    parser.add_argument(
        "--final-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for transactions to become final (default 300)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="before each configuration, wait up to this many seconds for other work on the machine "
        "to fall under 15%% of its CPU (default 60; 0: do not wait)",
    )
    parser.add_argument(
        "--broker",
        choices=stack.BROKERS,
        default=os.environ.get("BENCH_BROKER", "redis"),
        help="redis (default; BENCH_BROKER) or amqp: RabbitMQ on 127.0.0.1:5672 (guest), its own vhost",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a small run (N=200) of every phase")
    size.add_argument(
        "--smoke",
        action="store_true",
        help="N=40, set-up, low_load, mixed and floor_e2e only, results in bench/.work/smoke/ (CI; about a minute)",
    )
    parser.add_argument(
        "--phases",
        default=None,
        help=f"a comma-separated subset of the phases to run ({', '.join(sorted(ALL_PHASES))})",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also run the matrix 1|2 worker processes x 2|4 web processes (throughput phases)",
    )
    parser.add_argument("--results-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.results_dir is None:
        args.results_dir = stack.WORK_DIR / "smoke" if args.smoke else stack.RESULTS_DIR
    stack.use_broker(args.broker)
    if min(args.concurrency, args.web_workers, args.web_threads, args.worker_processes, args.worker_concurrency) < 1:
        parser.error("counts must be at least 1")

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGTERM behaves like Ctrl-C, so that the stack is torn down either way.
    signal.signal(signal.SIGTERM, on_term)
    cfg = _config_from(args)
    started = time.time()
    timestamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    results: dict[str, Any] = {
        "meta": {
            "timestamp_utc": timestamp,
            "quick": args.quick,
            "smoke": args.smoke,
            "broker": args.broker,
            "python": sys.version.split()[0],
            "machine_before": measure.machine_snapshot(),
        },
    }
    raws: dict[str, Any] = {}
    try:
        wanted = SMOKE_PHASES if args.smoke else ALL_PHASES
        if args.phases:
            wanted = frozenset(item.strip() for item in args.phases.split(",") if item.strip())
            if not wanted <= ALL_PHASES:
                parser.error(f"unknown phases: {', '.join(sorted(wanted - ALL_PHASES))}")
        quiet = 0.0 if args.smoke else args.wait_quiet
        main_result, raws["main"] = run_config(cfg, wanted, tag=f"b{timestamp}", quiet_timeout=quiet)
        results["main"] = main_result
        if args.scaling:
            rows = []
            for worker_processes, web_workers in SCALING_MATRIX:
                variant = dataclasses.replace(cfg, worker_processes=worker_processes, web_workers=web_workers)
                if variant == cfg:
                    rows.append(main_result)
                    continue
                summary, _ = run_config(
                    variant, THROUGHPUT_PHASES, tag=f"s{timestamp}-{variant.slug}", quiet_timeout=args.wait_quiet
                )
                rows.append(summary)
            results["scaling"] = rows
    except KeyboardInterrupt:
        print("interrupted: everything started has been stopped", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    results["meta"]["machine_after"] = measure.machine_snapshot()
    results["meta"]["duration_s"] = round(time.time() - started, 1)
    paths = report.write(results, raws, results_dir=args.results_dir, timestamp=timestamp)
    print((args.results_dir / "latest.md").read_text())
    print(
        "written: "
        + ", ".join(str(p.relative_to(stack.ROOT)) if p.is_relative_to(stack.ROOT) else str(p) for p in paths)
    )
    correctness = results["main"]["correctness"]
    broken = correctness["lost"] or correctness["paid_twice"] or correctness["sent_to_two_gateways"]
    floor_broken = (_get_floor_not_final(results["main"]) or 0) > 0
    if broken or floor_broken:
        print("bench: a transaction was lost, sent to two gateways or paid twice (see above)", file=sys.stderr)
    return 2 if broken or floor_broken else 0


def _get_floor_not_final(main: dict[str, Any]) -> int | None:
    return (main.get("floor") or {}).get("correctness", {}).get("not_final")


if __name__ == "__main__":
    sys.exit(main())
