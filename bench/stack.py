"""The benchmark's stack on the shared harness: bench database, Redis db and ports, and the broker probes.

Everything targets 127.0.0.1, a dedicated PostgreSQL database (`paygate_bench`, dropped and
recreated per run) and a dedicated Redis database (14), so that a `make run` or a test run on the
same machine is never disturbed. A second checkout benching at the same time moves the database,
the Redis database and every port with BENCH_DB_NAME, BENCH_REDIS_DB and BENCH_PORT_OFFSET.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import harness
from harness import HarnessError

ROOT = harness.ROOT
BENCH_DIR = ROOT / "bench"
WORK_DIR = BENCH_DIR / ".work"
RESULTS_DIR = BENCH_DIR / "results"

HOST = "127.0.0.1"
DB_NAME = os.environ.get("BENCH_DB_NAME", "paygate_bench")
DATABASE_URL = f"postgres://postgres@{HOST}:5432/{DB_NAME}"
PSYCOPG_DSN = f"postgresql://postgres@{HOST}:5432/{DB_NAME}"
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14"))
BROKER_URL = f"redis://{HOST}:6379/{REDIS_DB}"
_PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "0"))
WEB_PORT = 8200 + _PORT_OFFSET
FLOOR_PORT = 8201 + _PORT_OFFSET
# code -> (data format, port); the same gateways as the demo (CONTRACT §5), on bench ports.
SANDBOXES: dict[str, tuple[str, int]] = {
    "acmepay": ("json", 8211 + _PORT_OFFSET),
    "soapbank": ("xml", 8212 + _PORT_OFFSET),
    "globex": ("json", 8213 + _PORT_OFFSET),
}
FLOOR_QUEUE = "bench_floor"
FLOOR_SETTINGS = "bench.floor_settings"

BenchError = HarnessError
wait_for = harness.wait_for
http_get = harness.http_get
http_post_json = harness.http_post_json


def sandbox_url(code: str) -> str:
    return f"http://{HOST}:{SANDBOXES[code][1]}"


def bench_env(data_dir: Path) -> dict[str, str]:
    """Production settings (DEBUG off, fresh secrets) on the bench database and Redis db."""
    return harness.isolated_env(
        {
            "DATABASE_URL": DATABASE_URL,
            "CELERY_BROKER_URL": BROKER_URL,
            "PAYGATE_PUBLIC_URL": f"http://{HOST}:{WEB_PORT}",
            "PAYGATE_DATA_DIR": str(data_dir),
            "PAYGATE_DEMO_BASE_URLS": ",".join(f"{code}={sandbox_url(code)}" for code in SANDBOXES),
            "PROMETHEUS_MULTIPROC_DIR": str(data_dir / "metrics"),
            "LOG_LEVEL": "WARNING",
            # The per-key limit still runs (one cache increment per request) but never trips: one
            # bench key sends more than a merchant's default 6000/minute on purpose.
            "PAYGATE_RATE_LIMIT": "1000000/second",
        }
    )


class BenchStack(harness.Stack):
    def prepare(self, *, floor_env: Mapping[str, str]) -> str:
        """Fresh database and broker db, migrations (the floor's too), the demo seed; returns an API key."""
        ports = [WEB_PORT, FLOOR_PORT, *(port for _, port in SANDBOXES.values())]
        busy = [port for port in ports if harness.port_in_use(port)]
        if busy:
            raise BenchError(f"ports {busy} on {HOST} are in use (a previous bench still running?); free them first")
        harness.recreate_database(DB_NAME)
        redis_client().flushdb()
        # prometheus_client's multiprocess files of an earlier run would be added to this one's.
        metrics_dir = Path(self.env["PROMETHEUS_MULTIPROC_DIR"])
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput")
        self.manage("migrate", "floor", "--noinput", env=floor_env)
        self.manage("seed_demo", "--demo")
        return self.manage("create_api_key", "bench").strip().splitlines()[-1].strip()

    def start_sandboxes(self) -> None:
        for code, (data_format, port) in SANDBOXES.items():
            self.start_sandbox(code, data_format=data_format, port=port, callback_delay=0, wait=False)
        for code, (_, port) in SANDBOXES.items():
            self.wait_sandbox(code, port=port)

    def start_workers(
        self,
        *,
        prefix: str,
        processes: int,
        concurrency: int,
        queues: str | None = None,
        env: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> list[str]:
        """`processes` Celery worker processes named <prefix>1..N; with `wait`, once each answers a ping."""
        names = [f"{prefix}{index}" for index in range(1, processes + 1)]
        self.forget(names)  # the floor's workers reuse no earlier command line
        for name in names:
            self.start_worker(name, concurrency=concurrency, loglevel="WARNING", queues=queues, env=env)
        if wait:
            self.wait_workers(names, broker_url=BROKER_URL, timeout=60)
        return names


def redis_client() -> Any:
    import redis

    return redis.Redis(host=HOST, port=6379, db=REDIS_DB)


def queue_length(name: str) -> int:
    """Messages waiting in a kombu Redis queue (its priority sub-lists included)."""
    client = redis_client()
    keys = [name, *client.scan_iter(match=f"{name}\x06\x16*")]
    return sum(int(client.llen(key)) for key in keys)


def unacked_count(queue: str) -> int:
    """Messages of `queue` delivered to a worker and not acknowledged yet (kombu's Redis `unacked` hash,
    whose values are `[message, exchange, routing_key]`)."""
    count = 0
    for value in redis_client().hvals("unacked"):
        try:
            count += json.loads(value)[2] == queue
        except (ValueError, IndexError, TypeError):
            continue
    return count
