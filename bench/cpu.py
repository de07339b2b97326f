"""CPU time per transaction, by process kind: where the two cores go, one transaction at a time.

    .venv/bin/python bench/cpu.py [--n 300]

Starts the production shape on the bench database and ports (as bench/run.py does: granian
with 2 gthread workers of 4 threads, one Celery worker with 4 children, the three sandboxes; no beat), sends
N deposits one after the other, each waited for until final, and divides the CPU seconds that
each kind of process used meanwhile (from /proc: granian, celery, postgres, redis, sandboxes,
this script) by N. Sequential on purpose: no queueing, so the figures are each part's own cost.

Then the same for the floor (bench/floor: its web server and a Celery worker on its queue): N
bare creates one after the other, and their no-op tasks drained. From both it prints the
most transactions per second any pipeline of this shape could finish on this machine,
as a share of the floor's rate: each transaction costs at least one floor request
(create, publish, a task), one more inbound request without the task (the callback) and
the gateway's own work, and the machine has `os.cpu_count()` cores.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script: bench/ must not shadow anything, the project must import
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

import argparse
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import requests

from bench import phases, stack
from bench.stack import FLOOR_PORT, HOST, WEB_PORT, Stack

KINDS = ("granian", "celery", "run_sandbox_gateway", "redis-server", "postgres", "bench/cpu.py")
WARM_UP = 20
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds (user + system) of every live process, summed by kind."""
    seconds: dict[str, float] = defaultdict(float)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
            argv = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        kind = next((k for k in KINDS if k in argv or k in name), "other")
        seconds[kind] += (float(fields[11]) + float(fields[12])) / _TICKS
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="deposits measured (default 300)")
    args = parser.parse_args(argv)
    stack.install_signal_handlers()
    data_dir, log_dir = stack.WORK_DIR / "data", stack.WORK_DIR / "logs" / "cpu"
    shutil.rmtree(log_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = stack.bench_env(data_dir, stack.Secrets.generate())
    floor_env = stack.bench_env(data_dir, stack.Secrets.generate(), settings_module="bench.floor_settings")
    body = {"customer_id": "cus_cpu", "country": "DE", "amount": "10.00", "currency": "EUR",
            "payment_details": {"iban": "DE89370400440532013000"}}  # fmt: skip
    with Stack(env=env, log_dir=log_dir) as bench:
        api_key = bench.prepare(floor_env=floor_env)
        bench.start_sandboxes()
        bench.start_web(name="web", port=WEB_PORT, workers=2, threads=4)
        bench.start_workers(prefix="worker", processes=1, concurrency=4)
        db = phases.BenchDb(stack.PSYCOPG_DSN)
        session = requests.Session()
        session.headers["Authorization"] = f"Api-Key {api_key}"

        def one() -> None:
            response = session.post(f"http://{HOST}:{WEB_PORT}/api/v1/deposits", json=body, timeout=30)
            response.raise_for_status()
            txn_id = response.json()["id"]
            stack.wait_for(
                lambda: phases.count_final(db, [txn_id]) == 1,
                timeout=30,
                interval=0.002,
                what=f"transaction {txn_id} to be final",
                alive=bench.check_alive,
            )

        paygate, paygate_wall = measure(one, args.n)
        bench.stop(["web", "worker1"])

        bench.start_web(name="floor-web", port=FLOOR_PORT, workers=2, threads=4, env=floor_env)
        bench.start_workers(prefix="floor-worker", processes=1, concurrency=4, queues=stack.FLOOR_QUEUE, env=floor_env)
        floor_session = requests.Session()

        def bare() -> None:
            response = floor_session.post(f"http://{HOST}:{FLOOR_PORT}/bench/floor/deposits", json=body, timeout=30)
            response.raise_for_status()

        def drained() -> bool:
            return stack.queue_length(stack.FLOOR_QUEUE) == 0 and stack.unacked_count(stack.FLOOR_QUEUE) == 0

        def drain() -> None:
            # Polled rarely: this script's own CPU counts in the floor's figures.
            stack.wait_for(drained, timeout=60, interval=0.05, what="the no-op tasks to drain", alive=bench.check_alive)

        # The worker takes each no-op task as it comes; the last ones are waited for at the end.
        floor, floor_wall = measure(bare, args.n, then=drain)
        db.close()

    print_table(f"{args.n} Paygate deposits one after the other: {1000 * paygate_wall / args.n:.1f} ms each, "
                "accept to final", paygate, args.n)  # fmt: skip
    print_table(f"{args.n} floor creates one after the other, their no-op tasks drained: "
                f"{1000 * floor_wall / args.n:.1f} ms each", floor, args.n)  # fmt: skip
    ms = {kind: 1000 * seconds / args.n for kind, seconds in floor.items()}
    floor_ms = sum(ms.values())
    # The callback is an inbound request like the floor's, but sent by the gateway (whose CPU
    # is counted below) and with no task: the floor's own client and task are left out of it.
    callback_ms = floor_ms - ms.get("celery", 0.0) - ms.get("bench/cpu.py", 0.0)
    gateway_ms = 1000 * paygate.get("run_sandbox_gateway", 0.0) / args.n
    least = floor_ms + callback_ms + gateway_ms
    cores = os.cpu_count() or 1
    print(
        f"\nleast CPU a transaction costs with every step as bare as the floor: {least:.2f} ms = one floor request "
        f"with its client and task ({floor_ms:.2f}) + one without ({callback_ms:.2f}) + the sandbox's work "
        f"({gateway_ms:.2f});\nso at most {1000 * cores / least:.0f} transactions/s on {cores} cores "
        f"(Paygate here: {1000 * sum(paygate.values()) / args.n:.2f} ms, of which this script's polling is part)"
    )
    return 0


def measure(
    step: Callable[[], None], n: int, *, then: Callable[[], None] | None = None
) -> tuple[dict[str, float], float]:
    """CPU seconds by kind and wall seconds of `n` steps (and `then`, once), after warming up."""
    for _ in range(WARM_UP):  # connections, imports, caches
        step()
    if then is not None:
        then()
    before, started = cpu_by_kind(), time.monotonic()
    for _ in range(n):
        step()
    if then is not None:
        then()
    after, wall = cpu_by_kind(), time.monotonic() - started
    used = {kind: after[kind] - before.get(kind, 0.0) for kind in after}
    return {kind: seconds for kind, seconds in used.items() if seconds > 0}, wall


def print_table(title: str, used: dict[str, float], n: int) -> None:
    print(title)
    print("CPU per transaction, by process kind (ms):")
    for kind, seconds in sorted(used.items(), key=lambda item: -item[1]):
        print(f"  {kind:22s} {1000 * seconds / n:7.2f}")
    print(f"  {'total':22s} {1000 * sum(used.values()) / n:7.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
