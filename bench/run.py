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
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from bench import load, paypage, phases, report, stack
from bench.stack import FLOOR_PORT, HOST, WEB_PORT, BenchError, BenchStack
from harness.receiver import Receiver

ALL_PHASES = frozenset({"micro", "low_load", "mixed", "floor_e2e", "webhooks", "paypage", "api_only", "statements"})
SMOKE_PHASES = frozenset({"low_load", "mixed", "floor_e2e"})
THROUGHPUT_PHASES = frozenset({"mixed", "floor_e2e", "api_only"})
ROUNDS = 4  # Paygate and the floor alternate in this many rounds
SCALING_MATRIX = ((1, 2), (1, 4), (2, 2), (2, 4))  # (worker processes, web processes)


@dataclass(frozen=True)
class Config:
    n: int
    concurrency: int
    web_workers: int
    web_threads: int
    worker_processes: int
    worker_concurrency: int
    low_load_n: int
    final_timeout: float
    micro_quick: bool
    broker: str = "redis"
    statements_n: int = 20
    # Seconds for PostgreSQL's idle backends to flush their counters before pg_stat_database is read
    # (0: not read, as in --smoke).
    pg_settle_s: float = 11.0
    # The `paypage` phase: customers returning one at a time, and requests per pay page URL.
    paypage_n: int = 50
    paypage_requests: int = 1000

    @property
    def slug(self) -> str:
        web = f"web{self.web_workers}t{self.web_threads}"
        return f"{web}-wp{self.worker_processes}x{self.worker_concurrency}-c{self.concurrency}"

    @property
    def label(self) -> str:
        return (
            f"granian (bin/web) {self.web_workers} processes x {self.web_threads} threads, "
            f"celery {self.worker_processes} process(es) x {self.worker_concurrency}, {self.concurrency} in flight, "
            f"broker {'RabbitMQ (quorum queues, publisher confirms)' if self.broker == 'amqp' else 'Redis'}"
        )


class Timer:
    """Wall time and CPU use (ours, shared services, other work on the machine) of each phase."""

    def __init__(self, ours: Callable[[], dict[int, str]]) -> None:
        self.ours = ours  # the stack's process groups and their kinds, now
        self.phases: dict[str, dict[str, float]] = {}

    def phase(self, name: str) -> _PhaseTimer:
        return _PhaseTimer(self, name)


class _PhaseTimer:
    def __init__(self, timer: Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        print(f"  - {self.name} …", flush=True)
        self.started, self.cpu = time.monotonic(), phases.cpu_sample(self.timer.ours())

    def __exit__(self, *exc: object) -> None:
        self.timer.phases[self.name] = {
            "seconds": round(time.monotonic() - self.started, 2),
            **phases.cpu_usage(self.cpu, phases.cpu_sample(self.timer.ours())),
        }


def _reset_sandboxes() -> None:
    for code in stack.SANDBOXES:
        stack.http_post_json(f"{stack.sandbox_url(code)}/_sandbox/reset", timeout=15.0)


def _wait_final_each(
    db: phases.BenchDb, alive: Callable[[], None], *, count: Callable[..., int] = phases.count_final
) -> Callable[[load.RequestRecord], None]:
    """After each request, wait until its transaction is final (`count`: `phases.floor_count_final` for the floor)."""

    def wait(record: load.RequestRecord) -> None:
        txn_id = record.transaction_id
        if txn_id is not None:
            stack.wait_for(
                lambda: count(db, [txn_id]) == 1,
                timeout=30,
                interval=0.002,
                what=f"transaction {txn_id} to be final",
                alive=alive,
            )

    return wait


def _series(times: list[float], origin: float) -> list[int]:
    return phases.per_second(times, origin=origin)


def _micro(env: dict[str, str], *, quick: bool) -> dict[str, Any]:
    """bench/micro.py under pytest-benchmark on the bench database; µs per call, best and median round."""
    target = stack.WORK_DIR / "micro.json"
    harness.run_checked(
        [
            harness.PYTHON,
            "-m",
            "pytest",
            "bench/micro.py",
            "-q",
            "-p",
            "no:cacheprovider",
            "--benchmark-only",
            f"--benchmark-max-time={0.2 if quick else 1.0}",
            f"--benchmark-json={target}",
        ],
        env,
        what="pytest bench/micro.py",
        timeout=600,
    )
    benchmarks = json.loads(target.read_text())["benchmarks"]
    return {
        b["name"].removeprefix("test_"): {
            "min_us": round(b["stats"]["min"] * 1e6, 2),
            "median_us": round(b["stats"]["median"] * 1e6, 2),
            "rounds": b["stats"]["rounds"],
        }
        for b in benchmarks
    }


def _side_cost(
    window: phases.CpuWindow,
    counters: tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]],
    finished: int,
    *,
    floor: bool,
) -> dict[str, Any]:
    """CPU ms per finished transaction by kind, and PostgreSQL's counters per transaction, of one side."""
    database = stack.FLOOR_DB_NAME if floor else stack.DB_NAME
    return {
        "cpu": phases.cpu_ms_per_transaction(window.by_kind(), finished, floor=floor),
        "pg_stat_database": phases.pg_counters_per_transaction(
            counters[0].get(database, {}), counters[1].get(database, {}), finished
        ),
    }


def _webhooks(
    cfg: Config,
    db: phases.BenchDb,
    *,
    web_url: str,
    api_key: str,
    tag: str,
    kinds: Callable[[], dict[int, str]],
    alive: Callable[[], None],
) -> tuple[dict[str, Any], list[str]]:
    """The `mixed` phase with one endpoint subscribed to every event (`*`); (figures, transaction ids).

    The CPU window runs from the first request to the last delivery received, so the deliveries'
    own work (outbox rows, claims, signed POSTs, their records) is in the cost per transaction.
    """
    receiver = Receiver().start()
    endpoint = phases.webhook_endpoint_call(
        web_url,
        api_key,
        method="POST",
        payload={"url": receiver.url("/bench"), "events": ["*"]},
    )
    try:
        specs = load.make_specs(cfg.n, run_tag=f"{tag}-webhooks")
        with phases.CpuWindow(kinds) as window:
            result = load.drive(web_url, specs, concurrency=cfg.concurrency, api_key=api_key)
            ids = [r.transaction_id for r in result.accepted if r.transaction_id]
            done, _ = phases.wait_all_final(db, ids, timeout=cfg.final_timeout, alive=alive)
            rows = phases.fetch_rows(db, ids)
            completed = {txn_id for txn_id, row in rows.items() if row.status == "completed"}
            try:
                stack.wait_for(
                    lambda: (
                        completed <= phases.delivered_transactions(receiver.at("/bench"))
                        and phases.deliveries_outstanding(db, ids) == 0
                    ),
                    timeout=cfg.final_timeout,
                    interval=0.25,
                    what=f"{len(completed)} webhook deliveries",
                    alive=alive,
                )
            except stack.BenchError as exc:
                if "timed out" not in str(exc):
                    raise
        cpu = window.by_kind()
        finished = sum(1 for row in rows.values() if row.final)
        figures = {
            "api": phases.api_summary(result),
            "e2e": phases.e2e_summary(rows, ids),
            "all_final_within_deadline": done,
            "deliveries": phases.webhook_summary(receiver.at("/bench"), rows, secret=endpoint["secret"], db=db),
            "finished_per_s_until_last_delivery": phases.finished_per_s_until(rows, receiver.at("/bench")),
            "cost": {"cpu": phases.cpu_ms_per_transaction(cpu, finished, floor=False)},
        }
        return figures, ids
    finally:
        # The phases after this one measure Paygate with no endpoint again (on the way out after an
        # error, the web may be gone already: the first error is the one to report).
        with contextlib.suppress(OSError):
            phases.webhook_endpoint_call(web_url, api_key, method="DELETE", path=f"/{endpoint['id']}")
        receiver.stop()


def _statements(
    bench: BenchStack,
    cfg: Config,
    db: phases.BenchDb,
    floor_db: phases.BenchDb,
    *,
    api_key: str,
    tag: str,
    restart: Callable[[], None],
) -> dict[str, Any]:
    """SQL statements per transaction, from PostgreSQL's own statement log, Paygate's and the floor's.

    pg_stat_statements needs a server restart to load, so statement logging is switched on for the two
    bench databases only (log_statement = all, bind parameters left out), the processes restarted to
    take it, and K transactions sent one at a time on each side after a warm-up. Beat is stopped: the
    periodic sweeps are not part of a transaction.
    """
    log = phases.pg_log_path()
    if log is None:
        return {"method": "not measured: the PostgreSQL server log was not found"}
    web_url, floor_url = f"http://{HOST}:{WEB_PORT}", f"http://{HOST}:{FLOOR_PORT}"
    names = (stack.DB_NAME, stack.FLOOR_DB_NAME)
    for name in names:
        db.execute(f"ALTER DATABASE \"{name}\" SET log_statement = 'all'")
        db.execute(f'ALTER DATABASE "{name}" SET log_parameter_max_length = 0')
    try:
        restart()
        paygate_each = _wait_final_each(db, bench.check_alive)
        floor_each = _wait_final_each(floor_db, bench.check_alive, count=phases.floor_count_final)

        def paygate(specs: list[load.RequestSpec]) -> load.LoadResult:
            return load.drive(web_url, specs, concurrency=1, api_key=api_key, after_each=paygate_each)

        def floor(specs: list[load.RequestSpec]) -> load.LoadResult:
            return load.drive(floor_url, specs, concurrency=1, floor=True, after_each=floor_each)

        paygate(load.make_specs(5, run_tag=f"{tag}-stmtwarm"))  # connections, caches
        floor(load.make_specs(5, run_tag=f"{tag}-stmtfloorwarm"))
        results: dict[str, Any] = {}
        for side, drive, database in (("paygate", paygate, stack.DB_NAME), ("floor", floor, stack.FLOOR_DB_NAME)):
            start = log.stat().st_size
            done = drive(load.make_specs(cfg.statements_n, run_tag=f"{tag}-stmt-{side}"))
            time.sleep(0.5)  # a worker's last step may follow the final status by a moment: let it land
            counts = phases.count_statements(log, start, log.stat().st_size).get(database, Counter())
            n = len(done.accepted)
            total = sum(counts.values())
            control = sum(counts[verb] for verb in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET"))
            results[side] = {
                "transactions": n,
                "statements_per_transaction": round(total / n, 2) if n else None,
                "excluding_transaction_control": round((total - control) / n, 2) if n else None,
                "by_verb_per_transaction": {verb: round(c / n, 2) for verb, c in counts.most_common()} if n else {},
            }
        return {"method": "PostgreSQL statement log (log_statement = all on the bench databases)", **results}
    finally:
        for name in names:
            db.execute(f'ALTER DATABASE "{name}" RESET log_statement')
            db.execute(f'ALTER DATABASE "{name}" RESET log_parameter_max_length')


def run_config(
    cfg: Config, wanted: frozenset[str], *, tag: str, quiet_timeout: float = 0.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one configuration; (summary, raw data for charts)."""
    print(f"== {cfg.label}", flush=True)
    data_dir = stack.WORK_DIR / "data"
    log_dir = stack.WORK_DIR / "logs" / cfg.slug
    shutil.rmtree(log_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = stack.bench_env(data_dir)
    floor_env = stack.floor_env(env)
    web_url, floor_url = f"http://{HOST}:{WEB_PORT}", f"http://{HOST}:{FLOOR_PORT}"
    out: dict[str, Any] = {"config": dataclasses.asdict(cfg), "label": cfg.label}
    raw: dict[str, Any] = {}
    if quiet_timeout > 0:
        out["machine_quiet_check"] = quiet = phases.wait_quiet(timeout=quiet_timeout)
        if not quiet["quiet"]:
            print(
                f"  ! other work keeps {quiet['last_window']['other_percent_of_machine']}% of the machine busy; "
                "measuring anyway (see machine_quiet_check and the per-phase CPU figures)",
                flush=True,
            )

    with BenchStack(env=env, log_dir=log_dir) as bench:

        def kinds() -> dict[int, str]:
            return {
                process.pid: phases.process_kind(name)
                for name, process in bench.processes.items()
                if process.popen is not None
            }

        timer = Timer(kinds)
        with timer.phase("setup"):
            api_key = bench.prepare(floor_env=floor_env)
            bench.start_sandboxes()
            bench.start_web(port=WEB_PORT, workers=cfg.web_workers, threads=cfg.web_threads)
            bench.start_web(
                name="floor-web", port=FLOOR_PORT, workers=cfg.web_workers, threads=cfg.web_threads, env=floor_env
            )

        if "micro" in wanted:
            with timer.phase("micro"):
                out["micro"] = _micro(env, quick=cfg.micro_quick)

        _reset_sandboxes()
        bench.start_beat(pidfile=data_dir / "celerybeat.pid", loglevel="WARNING")
        # The webhook dispatcher, as the Procfile and compose run it.
        worker_names = [f"worker{i}" for i in range(1, cfg.worker_processes + 1)] + ["webhooks1"]
        floor_worker_names = [f"floor-worker{i}" for i in range(1, cfg.worker_processes + 1)]

        def start_workers(*, paygate: bool = True, floor: bool = True, wait: bool = True) -> None:
            if paygate:
                bench.start_workers(
                    prefix="worker", processes=cfg.worker_processes, concurrency=cfg.worker_concurrency, wait=wait
                )
                bench.start("webhooks1", harness.dispatcher_argv())
            if floor:
                bench.start_workers(
                    prefix="floor-worker",
                    processes=cfg.worker_processes,
                    concurrency=cfg.worker_concurrency,
                    queues=stack.FLOOR_QUEUE,
                    env=floor_env,
                    wait=wait,
                )

        start_workers()

        db = phases.BenchDb(stack.PSYCOPG_DSN)
        floor_db = phases.BenchDb(stack.FLOOR_PSYCOPG_DSN)
        databases = (stack.DB_NAME, stack.FLOOR_DB_NAME)
        all_ids: list[str] = []
        floor_ids: list[str] = []
        counters: dict[str, dict[str, int]] = {}

        def read_counters() -> dict[str, dict[str, int]]:
            if cfg.pg_settle_s <= 0:
                return {}
            return phases.pg_counters(db, databases, settle=cfg.pg_settle_s)

        try:
            if "low_load" in wanted:
                with timer.phase("low_load"):
                    # Interleaved in rounds, each transaction waited for until final, so both meet the same machine.
                    results = load.interleave(
                        {
                            "paygate": lambda part: load.drive(
                                web_url,
                                part,
                                concurrency=1,
                                api_key=api_key,
                                after_each=_wait_final_each(db, bench.check_alive),
                            ),
                            "floor": lambda part: load.drive(
                                floor_url,
                                part,
                                concurrency=1,
                                floor=True,
                                after_each=_wait_final_each(
                                    floor_db, bench.check_alive, count=phases.floor_count_final
                                ),
                            ),
                        },
                        {
                            "paygate": load.make_specs(cfg.low_load_n, run_tag=f"{tag}-low"),
                            "floor": load.make_specs(cfg.low_load_n, run_tag=f"{tag}-floorlow"),
                        },
                        rounds=ROUNDS,
                    )
                    ids = [r.transaction_id for r in results["paygate"].accepted if r.transaction_id]
                    fids = [r.transaction_id for r in results["floor"].accepted if r.transaction_id]
                    all_ids += ids
                    floor_ids += fids
                    rows = phases.fetch_rows(db, ids)
                    out["low_load"] = {
                        "api": phases.api_summary(results["paygate"]),
                        "e2e": phases.e2e_summary(rows, ids),
                    }
                    out.setdefault("floor", {})["low_load"] = {
                        "api": phases.api_summary(results["floor"]),
                        "e2e": phases.floor_e2e_summary(phases.floor_fetch_rows(floor_db, fids), fids),
                    }
                    raw["low_load_e2e_ms"] = [row.e2e_ms for row in rows.values() if row.e2e_ms is not None]

            if "mixed" in wanted:
                with timer.phase("mixed"):
                    specs = load.make_specs(cfg.n, run_tag=f"{tag}-mixed")
                    counters_before = counters or read_counters()
                    with phases.CpuWindow(kinds) as cpu, phases.BacklogSampler(time.time()) as backlog:
                        result = load.drive(web_url, specs, concurrency=cfg.concurrency, api_key=api_key)
                        ids = [r.transaction_id for r in result.accepted if r.transaction_id]
                        all_ids += ids
                        done, waited = phases.wait_all_final(
                            db, ids, timeout=cfg.final_timeout, alive=bench.check_alive
                        )
                    counters = counters_after = read_counters()
                    rows = phases.fetch_rows(db, ids)
                    finished = sum(1 for row in rows.values() if row.final)
                    out["mixed"] = {
                        "api": phases.api_summary(result),
                        "e2e": phases.e2e_summary(rows, ids),
                        "all_final_within_deadline": done,
                        "waited_for_final_s": round(waited, 2),
                        "backlog": backlog.summary(),
                        "extra_work": phases.amplification(db, ids),
                        "cost": _side_cost(cpu, (counters_before, counters_after), finished, floor=False),
                    }
                    origin = result.started_at
                    raw["mixed"] = {
                        "accepted_per_s": _series([r.started_at + r.latency_s for r in result.accepted], origin),
                        "finished_per_s": _series(
                            [row.finished_at for row in rows.values() if row.finished_at is not None], origin
                        ),
                        "api_latency_ms": [r.latency_s * 1000 for r in result.accepted],
                        "e2e_ms": [row.e2e_ms for row in rows.values() if row.e2e_ms is not None],
                        "requests": [dataclasses.asdict(r) for r in result.records],
                        "backlog": backlog.samples,
                    }

            if "floor_e2e" in wanted:
                with timer.phase("floor_e2e"):
                    specs = load.make_specs(cfg.n, run_tag=f"{tag}-floormixed")
                    counters_before = counters or read_counters()
                    with phases.CpuWindow(kinds) as cpu:
                        result = load.drive(floor_url, specs, concurrency=cfg.concurrency, floor=True)
                        fids = [r.transaction_id for r in result.accepted if r.transaction_id]
                        floor_ids += fids
                        done, waited = phases.wait_all_final(
                            floor_db,
                            fids,
                            timeout=cfg.final_timeout,
                            alive=bench.check_alive,
                            count=phases.floor_count_final,
                        )
                    counters = counters_after = read_counters()
                    frows = phases.floor_fetch_rows(floor_db, fids)
                    finished = sum(1 for row in frows.values() if row.final)
                    out.setdefault("floor", {})["e2e"] = {
                        "api": phases.api_summary(result),
                        "e2e": phases.floor_e2e_summary(frows, fids),
                        "all_final_within_deadline": done,
                        "waited_for_final_s": round(waited, 2),
                        "cost": _side_cost(cpu, (counters_before, counters_after), finished, floor=True),
                    }
                    origin = result.started_at
                    raw["floor_e2e"] = {
                        "finished_per_s": _series(
                            [row.finished_at for row in frows.values() if row.finished_at is not None], origin
                        ),
                        "api_latency_ms": [r.latency_s * 1000 for r in result.accepted],
                        "e2e_ms": [
                            (row.finished_at - row.created_at) * 1000
                            for row in frows.values()
                            if row.finished_at is not None
                        ],
                    }

            if "webhooks" in wanted:
                with timer.phase("webhooks"):
                    counters_before = counters or read_counters()
                    webhooks, ids = _webhooks(
                        cfg, db, web_url=web_url, api_key=api_key, tag=tag, kinds=kinds, alive=bench.check_alive
                    )
                    all_ids += ids
                    counters = counters_after = read_counters()
                    webhooks["cost"]["pg_stat_database"] = phases.pg_counters_per_transaction(
                        counters_before.get(stack.DB_NAME, {}),
                        counters_after.get(stack.DB_NAME, {}),
                        webhooks["cost"]["cpu"].get("transactions", 0),
                    )
                    out["webhooks"] = webhooks

            if "paypage" in wanted:
                with timer.phase("paypage"):

                    def stop_paygate_workers() -> None:
                        bench.stop([name for name in worker_names if name.startswith("worker")])

                    def start_paygate_workers() -> None:
                        bench.start_workers(
                            prefix="worker", processes=cfg.worker_processes, concurrency=cfg.worker_concurrency
                        )

                    out["paypage"], ids = paypage.run(
                        web_url,
                        api_key,
                        db,
                        n=cfg.paypage_n,
                        rps_requests=cfg.paypage_requests,
                        concurrency=cfg.concurrency,
                        tag=tag,
                        stop_workers=stop_paygate_workers,
                        start_workers=start_paygate_workers,
                        alive=bench.check_alive,
                    )
                    all_ids += ids

            if "api_only" in wanted:
                with timer.phase("api_only"):
                    bench.stop([*worker_names, *floor_worker_names])
                    # Paygate's API and the floor's, interleaved in rounds: both with nothing consuming
                    # their tasks, both meeting the same machine.
                    results = load.interleave(
                        {
                            "paygate": lambda part: load.drive(
                                web_url, part, concurrency=cfg.concurrency, api_key=api_key
                            ),
                            "floor": lambda part: load.drive(floor_url, part, concurrency=cfg.concurrency, floor=True),
                        },
                        {
                            "paygate": load.make_specs(cfg.n, run_tag=f"{tag}-apionly"),
                            "floor": load.make_specs(cfg.n, run_tag=f"{tag}-floor"),
                        },
                        rounds=ROUNDS,
                    )
                    result, floor_result = results["paygate"], results["floor"]
                    ids = [r.transaction_id for r in result.accepted if r.transaction_id]
                    fids = [r.transaction_id for r in floor_result.accepted if r.transaction_id]
                    all_ids += ids
                    floor_ids += fids
                    out["api_only"] = {"api": phases.api_summary(result), "rounds": ROUNDS}
                    out.setdefault("floor", {})["api"] = {**phases.api_summary(floor_result), "rounds": ROUNDS}
                    raw["api_only"] = {
                        "api_latency_ms": [r.latency_s * 1000 for r in result.accepted],
                        "requests": [dataclasses.asdict(r) for r in result.records],
                    }
                    raw["floor"] = {"api_latency_ms": [r.latency_s * 1000 for r in floor_result.accepted]}
                with timer.phase("drain"):
                    with phases.BacklogSampler(result.started_at) as backlog:
                        start_workers(floor=False, wait=False)
                        done, waited = phases.wait_all_final(
                            db, ids, timeout=cfg.final_timeout, alive=bench.check_alive
                        )
                    rows = phases.fetch_rows(db, ids)
                    drain = phases.drain_summary(rows, ids)
                    out["drain"] = {
                        **drain,
                        "all_final_within_deadline": done,
                        "backlog": backlog.summary(),
                        "extra_work": phases.amplification(db, ids),
                    }
                    first = drain.get("first_attempt_at") or time.time()
                    raw["drain_finished_per_s"] = _series(
                        [row.finished_at for row in rows.values() if row.finished_at is not None], first
                    )
                with timer.phase("floor_drain"):
                    started = time.time()
                    start_workers(paygate=False, wait=False)
                    done, _ = phases.wait_all_final(
                        floor_db,
                        fids,
                        timeout=cfg.final_timeout,
                        alive=bench.check_alive,
                        count=phases.floor_count_final,
                    )
                    frows = phases.floor_fetch_rows(floor_db, fids)
                    finished_at = [row.finished_at for row in frows.values() if row.finished_at is not None]
                    out["floor"]["drain"] = {
                        "transactions": len(fids),
                        "final": sum(1 for row in frows.values() if row.final),
                        "all_final_within_deadline": done,
                        # From the workers' start (the floor records no pick-up time) to the last final.
                        "finished_per_s": round(len(finished_at) / max(max(finished_at) - started, 1e-9), 2)
                        if finished_at
                        else None,
                    }
                    raw["floor_drain_finished_per_s"] = _series(finished_at, started)

            with timer.phase("correctness"):
                # Give late transactions of any phase the same deadline before judging them lost.
                phases.wait_all_final(db, all_ids, timeout=cfg.final_timeout, alive=bench.check_alive)
                rows = phases.fetch_rows(db, all_ids)
                out["correctness"] = phases.correctness(all_ids, rows, phases.sandbox_payments(), db)
                phases.wait_all_final(
                    floor_db,
                    floor_ids,
                    timeout=cfg.final_timeout,
                    alive=bench.check_alive,
                    count=phases.floor_count_final,
                )
                frows = phases.floor_fetch_rows(floor_db, floor_ids)
                out.setdefault("floor", {})["correctness"] = {
                    "accepted": len(floor_ids),
                    "not_final": sum(1 for i in floor_ids if i not in frows or not frows[i].final),
                }

            if "statements" in wanted:
                with timer.phase("statements"):

                    def restart() -> None:
                        bench.stop(["beat", *worker_names, *floor_worker_names, "web", "floor-web"])
                        bench.start_web(port=WEB_PORT, workers=cfg.web_workers, threads=cfg.web_threads)
                        bench.start_web(
                            name="floor-web",
                            port=FLOOR_PORT,
                            workers=cfg.web_workers,
                            threads=cfg.web_threads,
                            env=floor_env,
                        )
                        start_workers()

                    out["statements"] = _statements(bench, cfg, db, floor_db, api_key=api_key, tag=tag, restart=restart)
        finally:
            db.close()
            floor_db.close()
            out["database_interruptions"] = db.interruptions + floor_db.interruptions

        bench.stop(["beat", *worker_names, *floor_worker_names])

    out["logs"] = phases.scan_logs(log_dir)
    out["log_dir"] = str(log_dir.relative_to(stack.ROOT))
    out["phases"] = timer.phases
    return out, raw


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
            "machine_before": phases.machine_snapshot(),
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
    results["meta"]["machine_after"] = phases.machine_snapshot()
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
