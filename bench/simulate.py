"""`make simulate`: success-rate routing against priority routing, on the real stack, through drifting gateways.

    make simulate                              # the full run (about 10 minutes on 2 cores)
    make simulate SIMULATE_ARGS=--quick        # the same scenarios in a third of the time (a smoke run)
    make simulate SIMULATE_ARGS="--scenario drift --micro"

It starts the production shape on the shared harness — web (granian), Celery workers and beat,
the sandboxes `acmepay` (JSON) and `soapbank` (SOAP) — on PostgreSQL and Redis, and plays the
scenarios of `bench/scenarios.py` on the sandboxes (`POST /_sandbox/mode` with `decline_rate`
and `latency_ms`, CONTRACT §4) while sending deposits at a fixed rate. Every deposit goes twice,
to two twin countries routed acmepay 1, soapbank 2: one country on `priority`, the other on
`success_rate` (set with `manage.py set_routing`). So both strategies get the same traffic at
the same moments from the same gateways, and whatever else disturbs the machine falls on both.

Each transaction is then judged against the scenario (see `bench/scenarios.py`): observed
success (completed), expected success (one minus the decline rate of the gateway it was routed
to, when it was routed: the routing's effect without the coin flips of the declines) and the
oracle's (the best gateway at that moment). Reported per scenario: success rates with 95%
intervals, the share of the priority→oracle gap that success_rate recovers, the share of
traffic explored, gateway-call and end-to-end latency p50/p95, and how long the routing
decision took in the workers' steps (each attempt's record says, `decided_in_us`); with
`--micro`, also the routing rows of `bench/micro.py` on the same database before the traffic.

Why here and not in a package of its own: it is a benchmark of the pipeline, built from what
`bench/` already has — the harness (`harness/`), the load generator (`bench/load.py`), the
database reader, the micro-benchmarks and matplotlib (`bench/requirements.txt`).

It uses the database `paygate_simulate` (dropped and recreated), Redis database 13 (flushed)
and ports 8400 (web), 8411–8412 (sandboxes); SIM_DB_NAME, SIM_REDIS_DB and SIM_PORT_OFFSET
move them. Output: `bench/results/simulate.md` and `simulate.png` (committed), every figure in
`bench/results/simulate.json`, and per-transaction records and logs under `bench/.work/simulate/`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import harness
from bench import load
from bench.measure import BenchDb
from bench.scenarios import (
    ROUTES,
    SCENARIOS,
    Scenario,
    Timeline,
    difference_ci,
    expected_success,
    oracle_success,
    quantile,
    recovery_ci,
    wilson,
)

ROOT = harness.ROOT
BENCH_DIR = ROOT / "bench"
WORK_DIR = BENCH_DIR / ".work" / "simulate"
RESULTS_DIR = BENCH_DIR / "results"
HOST = harness.HOST
REDIS_DB = int(os.environ.get("SIM_REDIS_DB", "13"))
_PORT_OFFSET = harness.port_offset("SIM")
STACK = harness.StackConfig(
    db_name=harness.db_name("SIM", "paygate_simulate"),
    web_port=8400 + _PORT_OFFSET,
    sandboxes={"acmepay": ("json", 8411 + _PORT_OFFSET), "soapbank": ("xml", 8412 + _PORT_OFFSET)},
    redis_url=f"redis://{HOST}:6379/{REDIS_DB}",
    data_dir=WORK_DIR / "data",
)
DB_NAME = STACK.db_name
PSYCOPG_DSN = STACK.psycopg_dsn
BROKER_URL = STACK.redis_url
WEB_PORT = STACK.web_port
SANDBOXES = STACK.sandboxes
sandbox_url = STACK.sandbox_url
CALLBACK_DELAY_S = 0.2

# Deposits per second sent to each of the twin countries (so twice this in all).
RATE_PER_S = 6
TICK_S = 1.0
CONCURRENCY = 8  # requests in flight per second's batch
SENDERS = 4  # batches in flight at once
BIN_S = 10.0
# The success_rate country's settings: the defaults, except a window of 120 s instead of 600 s —
# the scenarios play in minutes what would take tens of minutes — and a latency ceiling.
SUCCESS_RATE_OPTIONS = {"--exploration": "0.05", "--latency-threshold-ms": "300", "--window-seconds": "120"}
TARGET_RECOVERY = 0.80
TARGET_STEADY_LOSS = 0.005
TARGET_DECISION_US = 1000.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def simulate_env() -> dict[str, str]:
    """Production settings (DEBUG off, fresh secrets) on the simulation's database, Redis db and ports."""
    return STACK.env({"LOG_LEVEL": "WARNING", "PAYGATE_RATE_LIMIT": "1000000/second"})


# --- the stack ------------------------------------------------------------------------------------


def prepare(stack: harness.Stack, scenarios: list[Scenario], options: dict[str, str]) -> str:
    """A fresh database with the demo, the twin countries of every scenario and their strategies; an API key."""
    busy = [port for port in [WEB_PORT, *(port for _, port in SANDBOXES.values())] if harness.port_in_use(port)]
    if busy:
        raise harness.HarnessError(f"ports {busy} on {HOST} are in use (an earlier run still going?); free them first")
    harness.recreate_database(DB_NAME)
    import redis

    redis.Redis(host=HOST, port=6379, db=REDIS_DB).flushdb()
    metrics_dir = Path(stack.env["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    stack.manage("migrate", "--noinput")
    stack.manage("seed_demo", "--demo")
    countries = [country for scenario in scenarios for country in scenario.countries]
    stack.manage(
        "shell",
        "-c",
        "from gateways.models import Country, Gateway, GatewayRoute\n"
        f"for code, name in {countries!r}:\n"
        "    country, _ = Country.objects.get_or_create(code=code, defaults={'name': name, 'currency': 'EUR'})\n"
        "    GatewayRoute.objects.filter(country=country).delete()\n"
        f"    for gateway, priority in {list(ROUTES)!r}:\n"
        "        GatewayRoute.objects.create(country=country, gateway=Gateway.objects.get(code=gateway),"
        " priority=priority, currencies=['EUR'], transaction_types=['deposit'])\n",
    )
    for scenario in scenarios:
        priority_country, success_rate_country = scenario.countries
        stack.manage("set_routing", priority_country[0], "--strategy", "priority")
        arguments = [item for pair in options.items() for item in pair]
        stack.manage("set_routing", success_rate_country[0], "--strategy", "success_rate", *arguments)
    return stack.manage("create_api_key", "simulation").strip().splitlines()[-1].strip()


def start(stack: harness.Stack, data_dir: Path) -> None:
    for code, (data_format, port) in SANDBOXES.items():
        stack.start_sandbox(code, data_format=data_format, port=port, callback_delay=CALLBACK_DELAY_S, wait=False)
    for code, (_, port) in SANDBOXES.items():
        stack.wait_sandbox(code, port=port)
    stack.start_web(port=WEB_PORT, workers=2, threads=4)
    names = ["worker1", "worker2"]
    for name in names:
        stack.start_worker(name, concurrency=4, loglevel="WARNING")
    stack.wait_workers(names, broker_url=BROKER_URL, timeout=90)
    stack.start_beat(pidfile=data_dir / "celerybeat.pid", loglevel="WARNING")


def micro(env: dict[str, str], *, quick: bool) -> dict[str, Any]:
    """The routing rows of bench/micro.py on this database: µs per call, best and median round."""
    target = WORK_DIR / "micro.json"
    harness.run_checked(
        [
            harness.PYTHON,
            "-m",
            "pytest",
            "bench/micro.py",
            "-k",
            "route",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--benchmark-only",
            f"--benchmark-max-time={0.3 if quick else 1.0}",
            f"--benchmark-json={target}",
        ],
        env,
        what="pytest bench/micro.py -k route",
        log_path=WORK_DIR / "logs" / "micro.log",
        timeout=600,
    )
    return {
        b["name"].removeprefix("test_"): {
            "min_us": round(b["stats"]["min"] * 1e6, 1),
            "median_us": round(b["stats"]["median"] * 1e6, 1),
            "rounds": b["stats"]["rounds"],
        }
        for b in json.loads(target.read_text())["benchmarks"]
    }


# --- playing a scenario ---------------------------------------------------------------------------


def set_modes(conditions: dict[str, tuple[float, int]]) -> None:
    for code, (decline_rate, latency_ms) in conditions.items():
        harness.http_post_json(
            f"{sandbox_url(code)}/_sandbox/mode",
            {"mode": "ok", "decline_rate": decline_rate, "latency_ms": latency_ms, "callback": "completed"},
        )


def specs_for(tick: int, countries: list[str], rng: random.Random, *, run_tag: str) -> list[load.RequestSpec]:
    """This tick's deposits: the same bodies for every country (only the country differs), in turn."""
    specs = []
    for slot in range(RATE_PER_S * round(TICK_S)):
        amount = f"{rng.randint(1000, 90000) / 100:.2f}"
        customer = f"cus_{rng.randint(1, 500)}"
        order = countries if (tick + slot) % 2 == 0 else countries[::-1]
        for country in order:
            body = {
                "customer_id": customer,
                "country": country,
                "amount": amount,
                "currency": "EUR",
                "payment_details": {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"},
                "metadata": {"tick": tick, "slot": slot},
            }
            specs.append(
                load.RequestSpec(
                    index=len(specs),
                    type="deposit",
                    country=country,
                    body=json.dumps(body, separators=(",", ":")).encode(),
                    idempotency_key=f"{run_tag}-{tick}-{slot}-{country}",
                )
            )
    return specs


def play(scenario: Scenario, *, api_key: str, stack: harness.Stack, seed: int) -> dict[str, Any]:
    """Send the scenario's traffic while changing the sandboxes' modes on its schedule.

    Open loop: each second's deposits go out in a thread of their own, so a slow answer
    delays neither the schedule nor the next second's traffic.
    """
    base_url = f"http://{HOST}:{WEB_PORT}"
    for code in SANDBOXES:
        harness.http_post_json(f"{sandbox_url(code)}/_sandbox/reset", timeout=15.0)
    countries = [code for code, _ in scenario.countries]
    rng = random.Random(f"{seed}-{scenario.name}")
    timeline = Timeline()
    applied: dict[str, tuple[float, int]] | None = None
    batches = []
    load_max = 0.0  # the machine may be shared: the busiest it got, as the 1-minute load average
    ticks = math.ceil(scenario.duration_s / TICK_S)
    started = time.time()
    with ThreadPoolExecutor(max_workers=SENDERS) as senders:
        for tick in range(ticks):
            time.sleep(max(0.0, started + tick * TICK_S - time.time()))
            conditions = scenario.conditions(time.time() - started)
            if conditions != applied:
                set_modes(conditions)
                timeline.add(time.time(), conditions)
                applied = conditions
            load_max = max(load_max, os.getloadavg()[0])
            specs = specs_for(tick, countries, rng, run_tag=f"{scenario.name}-{seed}")
            batches.append(senders.submit(load.drive, base_url, specs, concurrency=CONCURRENCY, api_key=api_key))
            if tick % 30 == 29:
                stack.check_alive()
                answered = sum(batch.done() for batch in batches)
                log(f"  {scenario.name}: {tick + 1}/{ticks} s, {answered} seconds of traffic answered")
        results = [batch.result() for batch in batches]
    refused: Counter[str] = Counter()
    accepted: dict[str, str] = {}  # transaction id -> country
    for result in results:
        for record in result.records:
            if record.status == 202 and record.transaction_id:
                accepted[record.transaction_id] = record.country
            else:
                refused[f"{record.status}: {(record.error or '')[:80]}"] += 1
    return {
        "started": started,
        "ended": time.time(),
        "timeline": timeline,
        "accepted": accepted,
        "refused": refused,
        "load_max": load_max,
    }


def wait_final(db: BenchDb, countries: list[str], *, since: float, timeout: float = 120.0) -> int:
    def open_count() -> int:
        row = db.execute(
            "SELECT count(*) FROM payments_transaction WHERE country_id = ANY(%s) AND status NOT IN"
            " ('completed', 'failed') AND created_at >= to_timestamp(%s)",
            (countries, since),
        ).fetchone()
        return int(row[0])

    deadline = time.monotonic() + timeout
    while (left := open_count()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@dataclasses.dataclass
class Txn:
    country: str
    status: str
    created_at: float
    finished_at: float | None
    routed_at: float  # the deciding attempt's creation: when its route was chosen
    gateway: str
    attempts: int
    latency_ms: float | None
    explored: bool
    routing: dict[str, Any] | None


def fetch(db: BenchDb, countries: list[str], since: float) -> list[Txn]:
    rows = db.execute(
        """
        SELECT t.id, t.country_id, t.status, extract(epoch FROM t.created_at), extract(epoch FROM t.finished_at),
               a.number, g.code, a.latency_ms, extract(epoch FROM a.created_at), a.routing
        FROM payments_transaction t
        JOIN payments_attempt a ON a.transaction_id = t.id
        JOIN gateways_gateway g ON g.id = a.gateway_id
        WHERE t.country_id = ANY(%s) AND t.created_at >= to_timestamp(%s)
        ORDER BY t.created_at, t.id, a.number
        """,
        (countries, since),
    ).fetchall()
    by_id: dict[str, Txn] = {}
    for txn_id, country, status, created, finished, number, code, latency, attempted, routing in rows:
        if isinstance(routing, str):
            routing = json.loads(routing)
        # The last attempt is the one that took the transaction (no faults here: it is the only one).
        by_id[str(txn_id)] = Txn(
            country=country,
            status=status,
            created_at=float(created),
            finished_at=float(finished) if finished is not None else None,
            routed_at=float(attempted),
            gateway=code,
            attempts=number,
            latency_ms=latency,
            explored=bool(routing and routing.get("explored")),
            routing=routing,
        )
    return list(by_id.values())


# --- judging ---------------------------------------------------------------------------------------


def summarise(txns: list[Txn], timeline: Timeline) -> dict[str, Any]:
    n = len(txns)
    completed = sum(t.status == "completed" for t in txns)
    expected = [expected_success(timeline.at(t.routed_at), t.gateway) for t in txns]
    oracle = [oracle_success(timeline.at(t.routed_at)) for t in txns]
    latencies = [t.latency_ms for t in txns if t.latency_ms is not None]
    decisions = [float(t.routing["decided_in_us"]) for t in txns if t.routing and "decided_in_us" in t.routing]
    e2e = [1000 * (t.finished_at - t.created_at) for t in txns if t.finished_at is not None]
    low, high = wilson(completed, n)
    return {
        "transactions": n,
        "completed": completed,
        "success_rate": completed / n if n else None,
        "success_rate_ci95": [low, high],
        "expected_success_rate": sum(expected) / n if n else None,
        "oracle_success_rate": sum(oracle) / n if n else None,
        "explored_share": sum(t.explored for t in txns) / n if n else None,
        "share_by_gateway": {code: count / n for code, count in sorted(Counter(t.gateway for t in txns).items())},
        "not_final": sum(t.status not in ("completed", "failed") for t in txns),
        "more_than_one_attempt": sum(t.attempts > 1 for t in txns),
        "gateway_latency_ms": {"p50": quantile(latencies, 0.5), "p95": quantile(latencies, 0.95)},
        # Measured in the workers, around route_ranking: routes and settings (memory), scores (Redis), ordering.
        "routing_decision_us": {"p50": quantile(decisions, 0.5), "p95": quantile(decisions, 0.95)},
        "end_to_end_ms": {"p50": quantile(e2e, 0.5), "p95": quantile(e2e, 0.95)},
    }


def series(txns: list[Txn], timeline: Timeline, started: float, duration: float) -> dict[str, list[Any]]:
    bins = math.ceil(duration / BIN_S)
    groups: dict[int, list[Txn]] = defaultdict(list)
    for txn in txns:
        groups[min(int((txn.routed_at - started) // BIN_S), bins - 1)].append(txn)
    out: dict[str, list[Any]] = {
        "t": [],
        "observed": [],
        "expected": [],
        "oracle": [],
        "acmepay_share": [],
        "p95_ms": [],
    }
    for index in range(bins):
        group = groups.get(index, [])
        out["t"].append((index + 0.5) * BIN_S)
        if not group:
            for name in ("observed", "expected", "oracle", "acmepay_share", "p95_ms"):
                out[name].append(None)
            continue
        out["observed"].append(sum(t.status == "completed" for t in group) / len(group))
        out["expected"].append(sum(expected_success(timeline.at(t.routed_at), t.gateway) for t in group) / len(group))
        out["oracle"].append(sum(oracle_success(timeline.at(t.routed_at)) for t in group) / len(group))
        out["acmepay_share"].append(sum(t.gateway == "acmepay" for t in group) / len(group))
        out["p95_ms"].append(quantile([t.latency_ms for t in group if t.latency_ms is not None], 0.95))
    return out


def compare(priority: dict[str, Any], success_rate: dict[str, Any]) -> dict[str, Any]:
    diff, low, high = difference_ci(
        priority["completed"], priority["transactions"], success_rate["completed"], success_rate["transactions"]
    )
    oracle = (priority["oracle_success_rate"] + success_rate["oracle_success_rate"]) / 2
    gap = oracle - priority["expected_success_rate"]
    gained = success_rate["expected_success_rate"] - priority["expected_success_rate"]
    out: dict[str, Any] = {
        "observed_difference": diff,
        "observed_difference_ci95": [low, high],
        "expected_difference": gained,
        "oracle_success_rate": oracle,
        "gap_priority_to_oracle": gap,
    }
    if gap > 0.005:  # a gap worth recovering
        out["recovered_share_expected"] = gained / gap
        out["recovered_share_observed"] = diff / gap
        out["recovered_share_observed_ci95"] = list(
            recovery_ci(
                (priority["completed"], priority["transactions"]),
                (success_rate["completed"], success_rate["transactions"]),
                gap,
            )
        )
    return out


def run_scenario(
    scenario: Scenario, *, api_key: str, stack: harness.Stack, db: BenchDb, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    log(f"scenario {scenario.name}: {scenario.title} ({scenario.duration_s:.0f} s)")
    played = play(scenario, api_key=api_key, stack=stack, seed=seed)
    countries = [code for code, _ in scenario.countries]
    left = wait_final(db, countries, since=played["started"] - 1)
    txns = fetch(db, countries, since=played["started"] - 1)
    timeline: Timeline = played["timeline"]
    by_country = {code: [t for t in txns if t.country == code] for code in countries}
    priority_country, success_rate_country = countries
    strategies = {
        "priority": summarise(by_country[priority_country], timeline),
        "success_rate": summarise(by_country[success_rate_country], timeline),
    }
    result = {
        "title": scenario.title,
        "duration_s": scenario.duration_s,
        "countries": {"priority": priority_country, "success_rate": success_rate_country},
        "requests_refused": dict(played["refused"]),
        "sent_for_s": round(played["ended"] - played["started"], 1),
        "load_average_max": round(played["load_max"], 2),
        "achieved_per_s_per_strategy": round(len(by_country[priority_country]) / scenario.duration_s, 2),
        "not_final_after_wait": left,
        "strategies": strategies,
        "comparison": compare(strategies["priority"], strategies["success_rate"]),
        "mode_changes": len(timeline.changes),
    }
    raw = {
        "series": {
            name: series(by_country[code], timeline, played["started"], scenario.duration_s)
            for name, code in (("priority", priority_country), ("success_rate", success_rate_country))
        },
        "timeline": [[at - played["started"], conditions] for at, conditions in timeline.changes],
        "degraded": scenario.degraded,
        "transactions": [dataclasses.asdict(t) | {"t": t.routed_at - played["started"]} for t in txns],
    }
    log(
        f"  priority {strategies['priority']['success_rate']:.4f}, success_rate "
        f"{strategies['success_rate']['success_rate']:.4f}, oracle {result['comparison']['oracle_success_rate']:.4f}"
        f" ({strategies['priority']['transactions']} + {strategies['success_rate']['transactions']} transactions)"
    )
    return result, raw


# --- output ----------------------------------------------------------------------------------------


def chart(results: dict[str, Any], raw: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["scenarios"])
    fig, axes = plt.subplots(len(names), 1, figsize=(11, 3.6 * len(names)), squeeze=False)
    colours = {"priority": "tab:blue", "success_rate": "tab:orange"}
    for ax, name in zip(axes[:, 0], names, strict=True):
        data = raw[name]
        if data["degraded"]:
            ax.axvspan(*data["degraded"], color="0.92", zorder=0)
        if name == "latency":
            for strategy, colour in colours.items():
                s = data["series"][strategy]
                ax.plot(s["t"], s["p95_ms"], color=colour, marker="o", ms=3, label=f"{strategy}: gateway p95")
            ax.axhline(int(SUCCESS_RATE_OPTIONS["--latency-threshold-ms"]), color="0.4", ls=":", label="ceiling")
            ax.set_ylabel("gateway call p95 (ms)")
        else:
            oracle = data["series"]["priority"]["oracle"]
            ax.plot(
                data["series"]["priority"]["t"],
                [100 * v if v is not None else None for v in oracle],
                color="black",
                lw=2,
                label="oracle (expected)",
            )
            for strategy, colour in colours.items():
                s = data["series"][strategy]
                ax.plot(
                    s["t"],
                    [100 * v if v is not None else None for v in s["observed"]],
                    color=colour,
                    alpha=0.45,
                    marker="o",
                    ms=3,
                    lw=1,
                    label=f"{strategy}: observed",
                )
                ax.plot(
                    s["t"],
                    [100 * v if v is not None else None for v in s["expected"]],
                    color=colour,
                    lw=2.2,
                    label=f"{strategy}: expected",
                )
            ax.set_ylabel(f"success rate per {BIN_S:.0f} s (%)")
        ax.set_title(f"{name}: {results['scenarios'][name]['title']}", fontsize=10)
        ax.set_xlabel("seconds into the scenario")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}%"


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Routing simulation — {results['started']}",
        "",
        f"`make simulate{' SIMULATE_ARGS=--quick' if results['quick'] else ''}` (seed {results['seed']}): "
        f"{RATE_PER_S} deposits/s to each of two twin countries (same bodies, same moments, same sandboxes), one "
        "routed by `priority`, one by `success_rate` (defaults: exploration 5%, window 100 outcomes, minimum 20, "
        "default score 1.0; here a window of at most "
        f"{results['success_rate_options']['--window-seconds']} s instead of 600 s, the scenarios playing in minutes "
        "what would take tens, and a 300 ms latency ceiling). Stack: granian 2×4, Celery 2×4, "
        f"beat, PostgreSQL, Redis, sandboxes with a {CALLBACK_DELAY_S} s callback delay. Load average before: "
        f"{results['load_before']}, after: {results['load_after']}. Wall time: {results['wall_s']:.0f} s.",
        "",
        *(
            f"- **{name}**: {scenario['title']}. {scenario['achieved_per_s_per_strategy']} transactions/s per "
            f"strategy over {scenario['duration_s']:.0f} s; requests refused: "
            f"{sum(scenario['requests_refused'].values())}; not final after the wait: "
            f"{scenario['not_final_after_wait']}"
            + (
                f"; highest load average meanwhile: {scenario['load_average_max']}"
                if "load_average_max" in scenario
                else ""
            )
            for name, scenario in results["scenarios"].items()
        ),
        "",
        "*Observed*: completed / routed, with a 95% Wilson interval. *Expected*: one minus the decline rate of the "
        "gateway each transaction was routed to, at that moment (the routing's effect without the coin flips of the "
        "declines). *Oracle*: the best gateway at every moment, expected the same way.",
        "",
        "| scenario | strategy | transactions | observed success (95% CI) | expected | oracle | explored | "
        "acmepay share | gateway p50 / p95 ms | end-to-end p50 / p95 ms |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, scenario in results["scenarios"].items():
        for strategy, s in scenario["strategies"].items():
            low, high = s["success_rate_ci95"]
            lines.append(
                f"| {name} | {strategy} | {s['transactions']} | {pct(s['success_rate'])} ({pct(low)}–{pct(high)}) | "
                f"{pct(s['expected_success_rate'])} | {pct(s['oracle_success_rate'])} | {pct(s['explored_share'], 1)} |"
                f" {pct(s['share_by_gateway'].get('acmepay', 0.0), 1)} | {ms(s['gateway_latency_ms']['p50'])} / "
                f"{ms(s['gateway_latency_ms']['p95'])} | {ms(s['end_to_end_ms']['p50'])} / "
                f"{ms(s['end_to_end_ms']['p95'])} |"
            )
    lines += [
        "",
        "| scenario | success_rate − priority, observed (95% CI) | expected | gap priority→oracle | "
        "gap recovered, expected | gap recovered, observed (95% CI) |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for name, scenario in results["scenarios"].items():
        c = scenario["comparison"]
        low, high = c["observed_difference_ci95"]
        recovered = c.get("recovered_share_expected")
        observed = c.get("recovered_share_observed")
        ci = c.get("recovered_share_observed_ci95")
        lines.append(
            f"| {name} | {100 * c['observed_difference']:+.2f} pts ({100 * low:+.2f} to {100 * high:+.2f}) | "
            f"{100 * c['expected_difference']:+.2f} pts | {100 * c['gap_priority_to_oracle']:.2f} pts | "
            f"{pct(recovered, 0) if recovered is not None else '–'} | "
            + (f"{pct(observed, 0)} ({pct(ci[0], 0)}–{pct(ci[1], 0)})" if observed is not None and ci else "–")
            + " |"
        )
    lines += ["", "## Targets", ""]
    for target in results["targets"]:
        lines.append(f"- {target['what']}: **{target['value']}** — {'met' if target['met'] else 'NOT met'}")
    lines += [
        "",
        "## Routing decision time in the workers (`route_ranking`, from each attempt's `decided_in_us`)",
        "",
        "| scenario | priority p50 / p95 µs | success_rate p50 / p95 µs |",
        "| --- | ---: | ---: |",
    ]
    for name, scenario in results["scenarios"].items():
        cells = [
            f"{ms(times['p50'])} / {ms(times['p95'])}"
            for times in (scenario["strategies"][s]["routing_decision_us"] for s in ("priority", "success_rate"))
        ]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    if results.get("micro"):
        lines += [
            "",
            "bench/micro.py on this database, before the traffic (µs per call, best / median round):",
            "",
            "| operation | µs |",
            "| --- | ---: |",
        ]
        lines += [
            f"| {name} | {row['min_us']:.1f} / {row['median_us']:.1f} |" for name, row in results["micro"].items()
        ]
    lines += ["", "![success rate over time](simulate.png)", ""]
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    drift = results["scenarios"].get("drift")
    if drift and "recovered_share_expected" in drift["comparison"]:
        share = drift["comparison"]["recovered_share_expected"]
        out.append(
            {
                "what": f"drift: success_rate recovers ≥ {TARGET_RECOVERY:.0%} of the priority→oracle gap (expected)",
                "value": f"{share:.0%}",
                "met": share >= TARGET_RECOVERY,
            }
        )
    steady = results["scenarios"].get("steady")
    if steady:
        loss = -steady["comparison"]["expected_difference"]
        out.append(
            {
                "what": f"steady: success_rate loses ≤ {100 * TARGET_STEADY_LOSS:.1f} points to priority (expected)",
                "value": f"{100 * loss:+.2f} points",
                "met": loss <= TARGET_STEADY_LOSS,
            }
        )
    micro_rows = results.get("micro") or {}
    if "route_ranking_success_rate" in micro_rows and "route_ranking_priority" in micro_rows:
        added = (
            micro_rows["route_ranking_success_rate"]["median_us"] - micro_rows["route_ranking_priority"]["median_us"]
        )
        out.append(
            {
                "what": "the success_rate decision adds < 1 ms to a worker step over priority's "
                "(bench/micro.py, median round, before the traffic)",
                "value": f"{added:.0f} µs",
                "met": added < TARGET_DECISION_US,
            }
        )
    for name, scenario in results["scenarios"].items():
        priority_p50 = scenario["strategies"]["priority"]["routing_decision_us"]["p50"]
        success_rate_p50 = scenario["strategies"]["success_rate"]["routing_decision_us"]["p50"]
        if priority_p50 is not None and success_rate_p50 is not None:
            added = success_rate_p50 - priority_p50
            out.append(
                {
                    "what": f"{name}: the same, measured in the workers' steps during the run (p50; wall time, so "
                    "it includes waiting for a CPU when the machine is busy)",
                    "value": f"{added:.0f} µs",
                    "met": added < TARGET_DECISION_US,
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every scenario in a third of the time")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS], help="only these")
    parser.add_argument("--micro", action="store_true", help="also bench/micro.py's routing rows (about a minute)")
    parser.add_argument(
        "--report", action="store_true", help="only write the summary and chart again from the last run's figures"
    )
    args = parser.parse_args(argv)
    if args.report:
        results = json.loads((RESULTS_DIR / "simulate.json").read_text())
        return report(results, json.loads((WORK_DIR / "raw.json").read_text()))
    scenarios = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    options = dict(SUCCESS_RATE_OPTIONS)
    if args.quick:
        # The same story in a third of the time, and the score window shrunk with it.
        scenarios = [s.scaled(1 / 3) for s in scenarios]
        options["--window-seconds"] = str(round(int(options["--window-seconds"]) / 3))
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    data_dir = STACK.data_dir
    data_dir.mkdir(parents=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    env = simulate_env()
    wall = time.monotonic()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": args.quick,
        "seed": args.seed,
        "rate_per_s_per_strategy": RATE_PER_S,
        "success_rate_options": options,
        "load_before": [round(v, 2) for v in os.getloadavg()],
        "scenarios": {},
    }
    raw: dict[str, Any] = {}
    with harness.Stack(env=env, log_dir=WORK_DIR / "logs") as stack:
        log("preparing the database and starting the stack")
        api_key = prepare(stack, scenarios, options)
        if args.micro:
            log("micro-benchmark of the routing decision")
            results["micro"] = micro(env, quick=args.quick)
        start(stack, data_dir)
        db = BenchDb(PSYCOPG_DSN)
        try:
            for scenario in scenarios:
                results["scenarios"][scenario.name], raw[scenario.name] = run_scenario(
                    scenario, api_key=api_key, stack=stack, db=db, seed=args.seed
                )
        finally:
            db.close()
    results["load_after"] = [round(v, 2) for v in os.getloadavg()]
    results["wall_s"] = time.monotonic() - wall
    (WORK_DIR / "raw.json").write_text(json.dumps(raw, default=str))
    return report(results, raw)


def report(results: dict[str, Any], raw: dict[str, Any]) -> int:
    results["targets"] = targets(results)
    (RESULTS_DIR / "simulate.json").write_text(json.dumps(results, indent=1, default=str))
    chart(results, raw, RESULTS_DIR / "simulate.png")
    summary = markdown(results)
    (RESULTS_DIR / "simulate.md").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
