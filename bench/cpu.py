"""CPU time per transaction, by process kind: where the two cores go, one transaction at a time.

    .venv/bin/python bench/cpu.py [--n 300]

Starts the production shape on the bench database and ports (as bench/run.py does: gunicorn
with 2 gthread workers of 4 threads, one Celery worker with 4 children, the three sandboxes; no beat), sends
N deposits one after the other, each waited for until final, and divides the CPU seconds that
each kind of process used meanwhile (from /proc: gunicorn, celery, postgres, redis, sandboxes,
this script) by N. Sequential on purpose: no queueing, so the figures are each part's own cost.
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
from pathlib import Path

import requests

from bench import phases, stack
from bench.stack import HOST, WEB_PORT, Stack

KINDS = ("gunicorn", "celery", "run_sandbox_gateway", "redis-server", "postgres", "bench/cpu.py")
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
    with Stack(env=env, log_dir=log_dir) as bench:
        api_key = bench.prepare()
        bench.start_sandboxes()
        bench.start_web(name="web", port=WEB_PORT, workers=2, threads=4)
        bench.start_workers(prefix="worker", processes=1, concurrency=4)
        db = phases.BenchDb(stack.PSYCOPG_DSN)
        session = requests.Session()
        session.headers["Authorization"] = f"Api-Key {api_key}"
        body = {"customer_id": "cus_cpu", "country": "DE", "amount": "10.00", "currency": "EUR",
                "payment_details": {"iban": "DE89370400440532013000"}}  # fmt: skip

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

        for _ in range(WARM_UP):  # connections, imports, caches
            one()
        before, started = cpu_by_kind(), time.monotonic()
        for _ in range(args.n):
            one()
        after, wall = cpu_by_kind(), time.monotonic() - started
    print(f"{args.n} deposits one after the other: {1000 * wall / args.n:.1f} ms each, accept to final")
    print("CPU per transaction, by process kind (ms):")
    used = {kind: after[kind] - before.get(kind, 0.0) for kind in after}
    for kind, seconds in sorted(used.items(), key=lambda item: -item[1]):
        if seconds > 0:
            print(f"  {kind:22s} {1000 * seconds / args.n:7.2f}")
    print(f"  {'total':22s} {1000 * sum(s for s in used.values() if s > 0) / args.n:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
