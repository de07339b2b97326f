"""The phases of one bench configuration, in the order they run (see bench/run.py), on one stack.

`run_config` starts the stack and hands it to a `ConfigRun`, whose methods are the phases: each
drives load, reads back what happened (bench/measure.py) and adds its figures to the run's summary
(`out`) and, for the charts, to its raw data (`raw`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from bench import load, measure, paypage, stack
from bench.stack import FLOOR_PORT, HOST, WEB_PORT, BenchStack
from harness.receiver import Receiver

# Paygate and the floor alternate in this many rounds.
ROUNDS = 4


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
        self.started, self.cpu = time.monotonic(), measure.cpu_sample(self.timer.ours())

    def __exit__(self, *exc: object) -> None:
        self.timer.phases[self.name] = {
            "seconds": round(time.monotonic() - self.started, 2),
            **measure.cpu_usage(self.cpu, measure.cpu_sample(self.timer.ours())),
        }


def _reset_sandboxes() -> None:
    for code in stack.SANDBOXES:
        stack.http_post_json(f"{stack.sandbox_url(code)}/_sandbox/reset", timeout=15.0)


def _wait_final_each(
    db: measure.BenchDb, alive: Callable[[], None], *, count: Callable[..., int] = measure.count_final
) -> Callable[[load.RequestRecord], None]:
    """After each request, wait until its transaction is final (`count`: `measure.floor_count_final` for the floor)."""

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
    return measure.per_second(times, origin=origin)


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
    window: measure.CpuWindow,
    counters: tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]],
    finished: int,
    *,
    floor: bool,
) -> dict[str, Any]:
    """CPU ms per finished transaction by kind, and PostgreSQL's counters per transaction, of one side."""
    database = stack.FLOOR_DB_NAME if floor else stack.DB_NAME
    return {
        "cpu": measure.cpu_ms_per_transaction(window.by_kind(), finished, floor=floor),
        "pg_stat_database": measure.pg_counters_per_transaction(
            counters[0].get(database, {}), counters[1].get(database, {}), finished
        ),
    }


def _webhooks(
    cfg: Config,
    db: measure.BenchDb,
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
    endpoint = measure.webhook_endpoint_call(
        web_url,
        api_key,
        method="POST",
        payload={"url": receiver.url("/bench"), "events": ["*"]},
    )
    try:
        specs = load.make_specs(cfg.n, run_tag=f"{tag}-webhooks")
        with measure.CpuWindow(kinds) as window:
            result = load.drive(web_url, specs, concurrency=cfg.concurrency, api_key=api_key)
            ids = [r.transaction_id for r in result.accepted if r.transaction_id]
            done, _ = measure.wait_all_final(db, ids, timeout=cfg.final_timeout, alive=alive)
            rows = measure.fetch_rows(db, ids)
            completed = {txn_id for txn_id, row in rows.items() if row.status == "completed"}
            try:
                stack.wait_for(
                    lambda: (
                        completed <= measure.delivered_transactions(receiver.at("/bench"))
                        and measure.deliveries_outstanding(db, ids) == 0
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
            "api": measure.api_summary(result),
            "e2e": measure.e2e_summary(rows, ids),
            "all_final_within_deadline": done,
            "deliveries": measure.webhook_summary(receiver.at("/bench"), rows, secret=endpoint["secret"], db=db),
            "finished_per_s_until_last_delivery": measure.finished_per_s_until(rows, receiver.at("/bench")),
            "cost": {"cpu": measure.cpu_ms_per_transaction(cpu, finished, floor=False)},
        }
        return figures, ids
    finally:
        # The phases after this one measure Paygate with no endpoint again (on the way out after an
        # error, the web may be gone already: the first error is the one to report).
        with contextlib.suppress(OSError):
            measure.webhook_endpoint_call(web_url, api_key, method="DELETE", path=f"/{endpoint['id']}")
        receiver.stop()


def _statements(
    bench: BenchStack,
    cfg: Config,
    db: measure.BenchDb,
    floor_db: measure.BenchDb,
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
    log = measure.pg_log_path()
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
        floor_each = _wait_final_each(floor_db, bench.check_alive, count=measure.floor_count_final)

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
            counts = measure.count_statements(log, start, log.stat().st_size).get(database, Counter())
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
    data_dir = stack.STACK.data_dir
    log_dir = stack.WORK_DIR / "logs" / cfg.slug
    shutil.rmtree(log_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = stack.bench_env()
    out: dict[str, Any] = {"config": dataclasses.asdict(cfg), "label": cfg.label}
    if quiet_timeout > 0:
        out["machine_quiet_check"] = quiet = measure.wait_quiet(timeout=quiet_timeout)
        if not quiet["quiet"]:
            print(
                f"  ! other work keeps {quiet['last_window']['other_percent_of_machine']}% of the machine busy; "
                "measuring anyway (see machine_quiet_check and the per-phase CPU figures)",
                flush=True,
            )
    with BenchStack(env=env, log_dir=log_dir) as bench:
        run = ConfigRun(cfg, bench, env=env, data_dir=data_dir, tag=tag, out=out)
        run.setup(micro="micro" in wanted)
        try:
            for name in ("low_load", "mixed", "floor_e2e", "webhooks", "paypage", "api_only"):
                if name in wanted:
                    getattr(run, name)()
            run.correctness()
            if "statements" in wanted:
                run.statements()
        finally:
            run.close()
        bench.stop(["beat", *run.worker_names, *run.floor_worker_names])
    out["logs"] = measure.scan_logs(log_dir)
    out["log_dir"] = str(log_dir.relative_to(stack.ROOT))
    out["phases"] = run.timer.phases
    return out, run.raw


class ConfigRun:
    """One configuration's stack, databases and results so far; each phase is a method, run in order."""

    def __init__(
        self, cfg: Config, bench: BenchStack, *, env: dict[str, str], data_dir: Path, tag: str, out: dict[str, Any]
    ) -> None:
        self.cfg, self.bench, self.env, self.data_dir, self.tag = cfg, bench, env, data_dir, tag
        self.floor_env = stack.floor_env(env)
        self.web_url, self.floor_url = f"http://{HOST}:{WEB_PORT}", f"http://{HOST}:{FLOOR_PORT}"
        self.out = out
        self.raw: dict[str, Any] = {}
        self.timer = Timer(self.kinds)
        self.api_key = ""
        # The webhook dispatcher runs beside Paygate's workers, as the Procfile and compose run it.
        self.worker_names = [f"worker{i}" for i in range(1, cfg.worker_processes + 1)] + ["webhooks1"]
        self.floor_worker_names = [f"floor-worker{i}" for i in range(1, cfg.worker_processes + 1)]
        self.db: measure.BenchDb | None = None
        self.floor_db: measure.BenchDb | None = None
        # Every transaction accepted by any phase, judged together at the end.
        self.all_ids: list[str] = []
        self.floor_ids: list[str] = []
        # PostgreSQL's counters as last read: the next phase starts from them instead of reading again.
        self.counters: dict[str, dict[str, int]] = {}

    # --- the stack ---

    def kinds(self) -> dict[int, str]:
        """The stack's process groups and their kinds, now (for the CPU accounting)."""
        return {
            process.pid: measure.process_kind(name)
            for name, process in self.bench.processes.items()
            if process.popen is not None
        }

    def setup(self, *, micro: bool) -> None:
        """Databases, sandboxes and both web servers; `micro` before anything else runs; then beat and workers."""
        cfg, bench = self.cfg, self.bench
        with self.timer.phase("setup"):
            self.api_key = bench.prepare(floor_env=self.floor_env)
            bench.start_sandboxes()
            self.start_webs()
        if micro:
            with self.timer.phase("micro"):
                self.out["micro"] = _micro(self.env, quick=cfg.micro_quick)
        _reset_sandboxes()
        bench.start_beat(pidfile=self.data_dir / "celerybeat.pid", loglevel="WARNING")
        self.start_workers()
        self.db = measure.BenchDb(stack.PSYCOPG_DSN)
        self.floor_db = measure.BenchDb(stack.FLOOR_PSYCOPG_DSN)

    def start_webs(self) -> None:
        cfg = self.cfg
        self.bench.start_web(port=WEB_PORT, workers=cfg.web_workers, threads=cfg.web_threads)
        self.bench.start_web(
            name="floor-web", port=FLOOR_PORT, workers=cfg.web_workers, threads=cfg.web_threads, env=self.floor_env
        )

    def start_workers(self, *, paygate: bool = True, floor: bool = True, wait: bool = True) -> None:
        cfg, bench = self.cfg, self.bench
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
                env=self.floor_env,
                wait=wait,
            )

    def restart(self) -> None:
        """Every process but the sandboxes stopped and started again (to take new database settings)."""
        self.bench.stop(["beat", *self.worker_names, *self.floor_worker_names, "web", "floor-web"])
        self.start_webs()
        self.start_workers()

    def close(self) -> None:
        interruptions: list[dict[str, Any]] = []
        for db in (self.db, self.floor_db):
            if db is not None:
                db.close()
                interruptions += db.interruptions
        self.out["database_interruptions"] = interruptions

    @property
    def dbs(self) -> tuple[measure.BenchDb, measure.BenchDb]:
        """Paygate's database and the floor's (open from `setup` on)."""
        if self.db is None or self.floor_db is None:
            raise stack.BenchError("the databases are read only after setup")
        return self.db, self.floor_db

    def read_counters(self) -> dict[str, dict[str, int]]:
        if self.cfg.pg_settle_s <= 0:
            return {}
        return measure.pg_counters(self.dbs[0], (stack.DB_NAME, stack.FLOOR_DB_NAME), settle=self.cfg.pg_settle_s)

    # --- the phases ---

    def low_load(self) -> None:
        cfg, tag, (db, floor_db), alive = self.cfg, self.tag, self.dbs, self.bench.check_alive
        with self.timer.phase("low_load"):
            # Interleaved in rounds, each transaction waited for until final, so both meet the same machine.
            results = load.interleave(
                {
                    "paygate": lambda part: load.drive(
                        self.web_url, part, concurrency=1, api_key=self.api_key, after_each=_wait_final_each(db, alive)
                    ),
                    "floor": lambda part: load.drive(
                        self.floor_url,
                        part,
                        concurrency=1,
                        floor=True,
                        after_each=_wait_final_each(floor_db, alive, count=measure.floor_count_final),
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
            self.all_ids += ids
            self.floor_ids += fids
            rows = measure.fetch_rows(db, ids)
            self.out["low_load"] = {
                "api": measure.api_summary(results["paygate"]),
                "e2e": measure.e2e_summary(rows, ids),
            }
            self.out.setdefault("floor", {})["low_load"] = {
                "api": measure.api_summary(results["floor"]),
                "e2e": measure.floor_e2e_summary(measure.floor_fetch_rows(floor_db, fids), fids),
            }
            self.raw["low_load_e2e_ms"] = [row.e2e_ms for row in rows.values() if row.e2e_ms is not None]

    def mixed(self) -> None:
        cfg, db = self.cfg, self.dbs[0]
        with self.timer.phase("mixed"):
            specs = load.make_specs(cfg.n, run_tag=f"{self.tag}-mixed")
            counters_before = self.counters or self.read_counters()
            with measure.CpuWindow(self.kinds) as cpu, measure.BacklogSampler(time.time()) as backlog:
                result = load.drive(self.web_url, specs, concurrency=cfg.concurrency, api_key=self.api_key)
                ids = [r.transaction_id for r in result.accepted if r.transaction_id]
                self.all_ids += ids
                done, waited = measure.wait_all_final(db, ids, timeout=cfg.final_timeout, alive=self.bench.check_alive)
            self.counters = counters_after = self.read_counters()
            rows = measure.fetch_rows(db, ids)
            finished = sum(1 for row in rows.values() if row.final)
            self.out["mixed"] = {
                "api": measure.api_summary(result),
                "e2e": measure.e2e_summary(rows, ids),
                "all_final_within_deadline": done,
                "waited_for_final_s": round(waited, 2),
                "backlog": backlog.summary(),
                "extra_work": measure.amplification(db, ids),
                "cost": _side_cost(cpu, (counters_before, counters_after), finished, floor=False),
            }
            origin = result.started_at
            self.raw["mixed"] = {
                "accepted_per_s": _series([r.started_at + r.latency_s for r in result.accepted], origin),
                "finished_per_s": _series(
                    [row.finished_at for row in rows.values() if row.finished_at is not None], origin
                ),
                "api_latency_ms": [r.latency_s * 1000 for r in result.accepted],
                "e2e_ms": [row.e2e_ms for row in rows.values() if row.e2e_ms is not None],
                "requests": [dataclasses.asdict(r) for r in result.records],
                "backlog": backlog.samples,
            }

    def floor_e2e(self) -> None:
        cfg, floor_db = self.cfg, self.dbs[1]
        with self.timer.phase("floor_e2e"):
            specs = load.make_specs(cfg.n, run_tag=f"{self.tag}-floormixed")
            counters_before = self.counters or self.read_counters()
            with measure.CpuWindow(self.kinds) as cpu:
                result = load.drive(self.floor_url, specs, concurrency=cfg.concurrency, floor=True)
                fids = [r.transaction_id for r in result.accepted if r.transaction_id]
                self.floor_ids += fids
                done, waited = measure.wait_all_final(
                    floor_db,
                    fids,
                    timeout=cfg.final_timeout,
                    alive=self.bench.check_alive,
                    count=measure.floor_count_final,
                )
            self.counters = counters_after = self.read_counters()
            frows = measure.floor_fetch_rows(floor_db, fids)
            finished = sum(1 for row in frows.values() if row.final)
            self.out.setdefault("floor", {})["e2e"] = {
                "api": measure.api_summary(result),
                "e2e": measure.floor_e2e_summary(frows, fids),
                "all_final_within_deadline": done,
                "waited_for_final_s": round(waited, 2),
                "cost": _side_cost(cpu, (counters_before, counters_after), finished, floor=True),
            }
            origin = result.started_at
            self.raw["floor_e2e"] = {
                "finished_per_s": _series(
                    [row.finished_at for row in frows.values() if row.finished_at is not None], origin
                ),
                "api_latency_ms": [r.latency_s * 1000 for r in result.accepted],
                "e2e_ms": [
                    (row.finished_at - row.created_at) * 1000 for row in frows.values() if row.finished_at is not None
                ],
            }

    def webhooks(self) -> None:
        with self.timer.phase("webhooks"):
            counters_before = self.counters or self.read_counters()
            webhooks, ids = _webhooks(
                self.cfg,
                self.dbs[0],
                web_url=self.web_url,
                api_key=self.api_key,
                tag=self.tag,
                kinds=self.kinds,
                alive=self.bench.check_alive,
            )
            self.all_ids += ids
            self.counters = counters_after = self.read_counters()
            webhooks["cost"]["pg_stat_database"] = measure.pg_counters_per_transaction(
                counters_before.get(stack.DB_NAME, {}),
                counters_after.get(stack.DB_NAME, {}),
                webhooks["cost"]["cpu"].get("transactions", 0),
            )
            self.out["webhooks"] = webhooks

    def paypage(self) -> None:
        cfg, bench = self.cfg, self.bench
        with self.timer.phase("paypage"):

            def stop_paygate_workers() -> None:
                bench.stop([name for name in self.worker_names if name.startswith("worker")])

            def start_paygate_workers() -> None:
                bench.start_workers(prefix="worker", processes=cfg.worker_processes, concurrency=cfg.worker_concurrency)

            self.out["paypage"], ids = paypage.run(
                self.web_url,
                self.api_key,
                self.dbs[0],
                n=cfg.paypage_n,
                rps_requests=cfg.paypage_requests,
                concurrency=cfg.concurrency,
                tag=self.tag,
                stop_workers=stop_paygate_workers,
                start_workers=start_paygate_workers,
                alive=bench.check_alive,
            )
            self.all_ids += ids

    def api_only(self) -> None:
        """Both sides' API with nothing consuming their tasks, then each side's workers draining its backlog."""
        cfg, tag, (db, floor_db), alive = self.cfg, self.tag, self.dbs, self.bench.check_alive
        with self.timer.phase("api_only"):
            self.bench.stop([*self.worker_names, *self.floor_worker_names])
            # Paygate's API and the floor's, interleaved in rounds: both with nothing consuming
            # their tasks, both meeting the same machine.
            results = load.interleave(
                {
                    "paygate": lambda part: load.drive(
                        self.web_url, part, concurrency=cfg.concurrency, api_key=self.api_key
                    ),
                    "floor": lambda part: load.drive(self.floor_url, part, concurrency=cfg.concurrency, floor=True),
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
            self.all_ids += ids
            self.floor_ids += fids
            self.out["api_only"] = {"api": measure.api_summary(result), "rounds": ROUNDS}
            self.out.setdefault("floor", {})["api"] = {**measure.api_summary(floor_result), "rounds": ROUNDS}
            self.raw["api_only"] = {
                "api_latency_ms": [r.latency_s * 1000 for r in result.accepted],
                "requests": [dataclasses.asdict(r) for r in result.records],
            }
            self.raw["floor"] = {"api_latency_ms": [r.latency_s * 1000 for r in floor_result.accepted]}
        with self.timer.phase("drain"):
            with measure.BacklogSampler(result.started_at) as backlog:
                self.start_workers(floor=False, wait=False)
                done, waited = measure.wait_all_final(db, ids, timeout=cfg.final_timeout, alive=alive)
            rows = measure.fetch_rows(db, ids)
            drain = measure.drain_summary(rows, ids)
            self.out["drain"] = {
                **drain,
                "all_final_within_deadline": done,
                "backlog": backlog.summary(),
                "extra_work": measure.amplification(db, ids),
            }
            first = drain.get("first_attempt_at") or time.time()
            self.raw["drain_finished_per_s"] = _series(
                [row.finished_at for row in rows.values() if row.finished_at is not None], first
            )
        with self.timer.phase("floor_drain"):
            started = time.time()
            self.start_workers(paygate=False, wait=False)
            done, _ = measure.wait_all_final(
                floor_db, fids, timeout=cfg.final_timeout, alive=alive, count=measure.floor_count_final
            )
            frows = measure.floor_fetch_rows(floor_db, fids)
            finished_at = [row.finished_at for row in frows.values() if row.finished_at is not None]
            self.out["floor"]["drain"] = {
                "transactions": len(fids),
                "final": sum(1 for row in frows.values() if row.final),
                "all_final_within_deadline": done,
                # From the workers' start (the floor records no pick-up time) to the last final.
                "finished_per_s": round(len(finished_at) / max(max(finished_at) - started, 1e-9), 2)
                if finished_at
                else None,
            }
            self.raw["floor_drain_finished_per_s"] = _series(finished_at, started)

    def correctness(self) -> None:
        cfg, (db, floor_db), alive = self.cfg, self.dbs, self.bench.check_alive
        with self.timer.phase("correctness"):
            # Give late transactions of any phase the same deadline before judging them lost.
            measure.wait_all_final(db, self.all_ids, timeout=cfg.final_timeout, alive=alive)
            rows = measure.fetch_rows(db, self.all_ids)
            self.out["correctness"] = measure.correctness(self.all_ids, rows, measure.sandbox_payments(), db)
            measure.wait_all_final(
                floor_db, self.floor_ids, timeout=cfg.final_timeout, alive=alive, count=measure.floor_count_final
            )
            frows = measure.floor_fetch_rows(floor_db, self.floor_ids)
            self.out.setdefault("floor", {})["correctness"] = {
                "accepted": len(self.floor_ids),
                "not_final": sum(1 for i in self.floor_ids if i not in frows or not frows[i].final),
            }

    def statements(self) -> None:
        db, floor_db = self.dbs
        with self.timer.phase("statements"):
            self.out["statements"] = _statements(
                self.bench, self.cfg, db, floor_db, api_key=self.api_key, tag=self.tag, restart=self.restart
            )
