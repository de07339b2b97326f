"""Paygate's benchmark: the production shape on PostgreSQL + Redis, driven over HTTP, against its floor.

    .venv/bin/python -m bench.run [--n 2000] [--concurrency 16] [--web-workers 2]
                                  [--worker-processes 1] [--worker-concurrency 4] [--quick] [--scaling]

One configuration runs, in order, on a fresh `paygate_bench` database and Redis db 14 (the
processes through the shared harness, harness/):

1. set-up: migrate (and the floor app's migration), seed the demo on the bench sandbox ports,
   an API key; the three sandboxes (`--callback-delay 0`), Paygate's web (bin/web, :8200) and the
   floor's (:8201, same processes x threads, DJANGO_SETTINGS_MODULE=bench.floor_settings);
2. `micro`: API-key verification, Fernet and gateway row costs per call (bench/micro.py,
   pytest-benchmark);
3. celery beat and the Paygate workers start;
4. `low_load`: a closed loop of single transactions, each waited for until final: Paygate's
   own overhead without any queueing (with the floor's single requests, interleaved);
5. `mixed`: N creates at the given concurrency with the workers running: accepted/s,
   API latency, finished/s and accept-to-final latency: the realistic end to end;
6. `api_only`: Paygate's workers stop; N creates to Paygate and N to the floor (the bare
   endpoint; its no-op tasks go to their own queue with no consumer), at the same
   concurrency, interleaved in rounds (P F, F P, ...) so that other work on the machine
   falls on both alike; `drain`: Paygate's workers start and drain their backlog;
7. correctness against the sandboxes' own records; then Paygate's workers and beat stop;
8. `floor_drain`: floor workers (same processes x concurrency) drain the no-op tasks.

Results: bench/results/latest.md and the PNG charts (kept); every figure in latest.json and
<timestamp>.json, per-request records in raw/ (not committed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from bench import load, phases, report, stack
from bench.stack import FLOOR_PORT, HOST, WEB_PORT, BenchError, BenchStack

ALL_PHASES = frozenset({"micro", "low_load", "mixed", "api_only"})
THROUGHPUT_PHASES = frozenset({"mixed", "api_only"})
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

    @property
    def slug(self) -> str:
        web = f"web{self.web_workers}t{self.web_threads}"
        return f"{web}-wp{self.worker_processes}x{self.worker_concurrency}-c{self.concurrency}"

    @property
    def label(self) -> str:
        return (
            f"granian (bin/web) {self.web_workers} processes x {self.web_threads} threads, "
            f"celery {self.worker_processes} process(es) x {self.worker_concurrency}, {self.concurrency} in flight"
        )


class Timer:
    """Wall time and CPU use (ours, shared services, other work on the machine) of each phase."""

    def __init__(self, ours: set[int]) -> None:
        self.ours = ours  # the stack's process groups; grows as processes start
        self.phases: dict[str, dict[str, float]] = {}

    def phase(self, name: str) -> _PhaseTimer:
        return _PhaseTimer(self, name)


class _PhaseTimer:
    def __init__(self, timer: Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        print(f"  - {self.name} …", flush=True)
        self.started, self.cpu = time.monotonic(), phases.cpu_sample(self.timer.ours)

    def __exit__(self, *exc: object) -> None:
        self.timer.phases[self.name] = {
            "seconds": round(time.monotonic() - self.started, 2),
            **phases.cpu_usage(self.cpu, phases.cpu_sample(self.timer.ours)),
        }


def _reset_sandboxes() -> None:
    for code in stack.SANDBOXES:
        stack.http_post_json(f"{stack.sandbox_url(code)}/_sandbox/reset", timeout=15.0)


def _wait_final_each(db: phases.BenchDb, alive: Callable[[], None]) -> Callable[[load.RequestRecord], None]:
    def wait(record: load.RequestRecord) -> None:
        txn_id = record.transaction_id
        if txn_id is not None:
            stack.wait_for(
                lambda: phases.count_final(db, [txn_id]) == 1,
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
    floor_env = {**env, "DJANGO_SETTINGS_MODULE": stack.FLOOR_SETTINGS}
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
        timer = Timer(bench.pgids)
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
        worker_names = [f"worker{i}" for i in range(1, cfg.worker_processes + 1)]
        bench.start_workers(prefix="worker", processes=cfg.worker_processes, concurrency=cfg.worker_concurrency)

        db = phases.BenchDb(stack.PSYCOPG_DSN)
        all_ids: list[str] = []
        try:
            if "low_load" in wanted:
                with timer.phase("low_load"):
                    # Interleaved with the floor's single requests, in rounds, so both meet the same machine.
                    results = load.interleave(
                        {
                            "paygate": lambda part: load.drive(
                                web_url,
                                part,
                                concurrency=1,
                                api_key=api_key,
                                after_each=_wait_final_each(db, bench.check_alive),
                            ),
                            "floor": lambda part: load.drive(floor_url, part, concurrency=1, floor=True),
                        },
                        {
                            "paygate": load.make_specs(cfg.low_load_n, run_tag=f"{tag}-low"),
                            "floor": load.make_specs(cfg.low_load_n, run_tag=f"{tag}-floorlow"),
                        },
                        rounds=ROUNDS,
                    )
                    ids = [r.transaction_id for r in results["paygate"].accepted if r.transaction_id]
                    all_ids += ids
                    rows = phases.fetch_rows(db, ids)
                    out["low_load"] = {
                        "api": phases.api_summary(results["paygate"]),
                        "e2e": phases.e2e_summary(rows, ids),
                        "floor_api": phases.api_summary(results["floor"]),
                    }
                    raw["low_load_e2e_ms"] = [row.e2e_ms for row in rows.values() if row.e2e_ms is not None]

            if "mixed" in wanted:
                with timer.phase("mixed"):
                    specs = load.make_specs(cfg.n, run_tag=f"{tag}-mixed")
                    with phases.BacklogSampler(time.time()) as backlog:
                        result = load.drive(web_url, specs, concurrency=cfg.concurrency, api_key=api_key)
                        ids = [r.transaction_id for r in result.accepted if r.transaction_id]
                        all_ids += ids
                        done, waited = phases.wait_all_final(
                            db, ids, timeout=cfg.final_timeout, alive=bench.check_alive
                        )
                    rows = phases.fetch_rows(db, ids)
                    out["mixed"] = {
                        "api": phases.api_summary(result),
                        "e2e": phases.e2e_summary(rows, ids),
                        "all_final_within_deadline": done,
                        "waited_for_final_s": round(waited, 2),
                        "backlog": backlog.summary(),
                        "extra_work": phases.amplification(db, ids),
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

            if "api_only" in wanted:
                with timer.phase("api_only"):
                    bench.stop(worker_names)
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
                    all_ids += ids
                    out["api_only"] = {"api": phases.api_summary(result), "rounds": ROUNDS}
                    out["floor"] = {"api": phases.api_summary(floor_result), "rounds": ROUNDS}
                    if "low_load" in out:
                        out["floor"]["low_load_api"] = out["low_load"].pop("floor_api")
                    raw["api_only"] = {
                        "api_latency_ms": [r.latency_s * 1000 for r in result.accepted],
                        "requests": [dataclasses.asdict(r) for r in result.records],
                    }
                    raw["floor"] = {"api_latency_ms": [r.latency_s * 1000 for r in floor_result.accepted]}
                with timer.phase("drain"):
                    with phases.BacklogSampler(result.started_at) as backlog:
                        bench.start_workers(
                            prefix="worker",
                            processes=cfg.worker_processes,
                            concurrency=cfg.worker_concurrency,
                            wait=False,
                        )
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

            with timer.phase("correctness"):
                # Give late transactions of any phase the same deadline before judging them lost.
                phases.wait_all_final(db, all_ids, timeout=cfg.final_timeout, alive=bench.check_alive)
                rows = phases.fetch_rows(db, all_ids)
                out["correctness"] = phases.correctness(all_ids, rows, phases.sandbox_payments(), db)
        finally:
            db.close()
            out["database_interruptions"] = db.interruptions

        bench.stop(["beat", *worker_names])

        if "api_only" in wanted:
            published = stack.queue_length(stack.FLOOR_QUEUE)
            with timer.phase("floor_drain"):
                bench.start_workers(
                    prefix="floor-worker",
                    processes=cfg.worker_processes,
                    concurrency=cfg.worker_concurrency,
                    queues=stack.FLOOR_QUEUE,
                    env=floor_env,
                    wait=False,
                )
                drain = phases.watch_drain(published, timeout=cfg.final_timeout, alive=bench.check_alive)
                raw["floor_drain_samples"] = drain.pop("_samples")
                out.setdefault("floor", {})["noop_drain"] = drain

    out["logs"] = phases.scan_logs(log_dir)
    out["log_dir"] = str(log_dir.relative_to(stack.ROOT))
    out["phases"] = timer.phases
    return out, raw


def _config_from(args: argparse.Namespace) -> Config:
    quick = args.quick
    return Config(
        n=args.n if args.n is not None else (200 if quick else 2000),
        concurrency=args.concurrency,
        web_workers=args.web_workers,
        web_threads=args.web_threads,
        worker_processes=args.worker_processes,
        worker_concurrency=args.worker_concurrency,
        low_load_n=args.low_load_n if args.low_load_n is not None else (20 if quick else 100),
        final_timeout=args.final_timeout,
        micro_quick=quick,
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
    parser.add_argument("--quick", action="store_true", help="a small smoke run (N=200)")
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also run the matrix 1|2 worker processes x 2|4 web processes (throughput phases)",
    )
    parser.add_argument("--results-dir", type=Path, default=stack.RESULTS_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
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
            "python": sys.version.split()[0],
            "machine_before": phases.machine_snapshot(),
        },
    }
    raws: dict[str, Any] = {}
    try:
        main_result, raws["main"] = run_config(cfg, ALL_PHASES, tag=f"b{timestamp}", quiet_timeout=args.wait_quiet)
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
    return 2 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
