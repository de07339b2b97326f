"""The benchmark's stack on the shared harness: bench databases, broker and ports, and the broker probes.

Everything targets 127.0.0.1, dedicated PostgreSQL databases (`paygate_bench` for Paygate and
`paygate_bench_floor` for the floor, dropped and recreated per run) and a dedicated broker: Redis
database 14 (flushed), or with `--broker amqp` a RabbitMQ virtual host of the same name as the
database (deleted and created again; the cache then stays on that Redis database), so that a `make
run` or a test run on the same machine is never disturbed. A second checkout benching at the same
time moves the databases, the Redis database and every port with BENCH_DB_NAME, BENCH_REDIS_DB and
BENCH_PORT_OFFSET.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import harness
from harness import HarnessError

ROOT = harness.ROOT
BENCH_DIR = ROOT / "bench"
WORK_DIR = BENCH_DIR / ".work"
RESULTS_DIR = BENCH_DIR / "results"

HOST = harness.HOST
DB_NAME = harness.db_name("BENCH", "paygate_bench")
# The floor's own database: its backends, statements and counters are told apart from Paygate's.
FLOOR_DB_NAME = f"{DB_NAME}_floor"
FLOOR_DATABASE_URL = f"postgres://postgres@{harness.POSTGRES}/{FLOOR_DB_NAME}"
FLOOR_PSYCOPG_DSN = f"postgresql://postgres@{harness.POSTGRES}/{FLOOR_DB_NAME}"
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14"))
RABBITMQ_VHOST = DB_NAME
BROKERS = harness.BROKERS
_PORT_OFFSET = harness.port_offset("BENCH")
FLOOR_PORT = 8201 + _PORT_OFFSET
# The floor's gateway: the same sandbox server, its own process and records.
FLOOR_SANDBOX = "floorpay"
FLOOR_SANDBOX_PORT = 8214 + _PORT_OFFSET
FLOOR_QUEUE = "bench_floor"
FLOOR_SETTINGS = "bench.floor_settings"

# The same gateways as the demo (CONTRACT §5), on bench ports; the broker is Redis by default
# (`use_broker("amqp")`: RabbitMQ), the cache Redis whichever the broker.
STACK = harness.StackConfig(
    db_name=DB_NAME,
    web_port=8200 + _PORT_OFFSET,
    sandboxes=harness.demo_sandboxes(8211 + _PORT_OFFSET),
    redis_url=f"redis://{HOST}:6379/{REDIS_DB}",
    data_dir=WORK_DIR / "data",
    amqp_url=f"amqp://guest:guest@{HOST}:5672/{RABBITMQ_VHOST}",
)
BROKER = STACK.broker
use_broker = BROKER.use
PSYCOPG_DSN = STACK.psycopg_dsn
WEB_PORT = STACK.web_port
SANDBOXES = STACK.sandboxes
sandbox_url = STACK.sandbox_url


BenchError = HarnessError
wait_for = harness.wait_for
http_get = harness.http_get
http_post_json = harness.http_post_json


def bench_env() -> dict[str, str]:
    """Production settings (DEBUG off, fresh secrets) on the bench database and broker."""
    return STACK.env(
        {
            "LOG_LEVEL": "WARNING",
            # The per-key limit still runs (one cache increment per request) but never trips: one
            # bench key sends more than a merchant's default 6000/minute on purpose.
            "PAYGATE_RATE_LIMIT": "1000000/second",
            # The `webhooks` phase's receiver listens on loopback over plain HTTP; the address
            # check still runs at every delivery.
            "PAYGATE_WEBHOOK_ALLOW_PRIVATE": "True",
            # The pay page's per-address limit still runs but never trips: the `paypage` phase
            # sends every request from 127.0.0.1.
            "PAYGATE_PAY_PAGE_RATE_PER_MINUTE": "100000000",
        }
    )


def floor_env(env: Mapping[str, str]) -> dict[str, str]:
    """The floor's processes: Paygate's environment on the floor's database, settings and gateway."""
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": FLOOR_SETTINGS,
        "DATABASE_URL": FLOOR_DATABASE_URL,
        "BENCH_FLOOR_GATEWAY_URL": f"http://{HOST}:{FLOOR_SANDBOX_PORT}",
        "BENCH_FLOOR_CALLBACK_URL": f"http://{HOST}:{FLOOR_PORT}/bench/floor/callbacks",
    }


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise BenchError(f"rabbitmqctl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def reset_broker() -> None:
    """An empty broker: the Redis database flushed (it also holds the cache), the RabbitMQ vhost made anew."""
    redis_client().flushdb()
    if BROKER.name == "amqp":
        if RABBITMQ_VHOST in rabbitmqctl("list_vhosts", "--quiet", "--no-table-headers").split():
            rabbitmqctl("delete_vhost", RABBITMQ_VHOST)
        rabbitmqctl("add_vhost", RABBITMQ_VHOST)
        rabbitmqctl("set_permissions", "-p", RABBITMQ_VHOST, "guest", ".*", ".*", ".*")


class BenchStack(harness.Stack):
    def prepare(self, *, floor_env: Mapping[str, str]) -> str:
        """Fresh databases and broker, migrations (the floor's on its own database), the demo seed; an API key."""
        ports = [WEB_PORT, FLOOR_PORT, FLOOR_SANDBOX_PORT, *(port for _, port in SANDBOXES.values())]
        busy = [port for port in ports if harness.port_in_use(port)]
        if busy:
            raise BenchError(f"ports {busy} on {HOST} are in use (a previous bench still running?); free them first")
        harness.recreate_database(DB_NAME)
        harness.recreate_database(FLOOR_DB_NAME)
        reset_broker()
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
        self.start_sandbox(FLOOR_SANDBOX, data_format="json", port=FLOOR_SANDBOX_PORT, callback_delay=0, wait=False)
        for code, (_, port) in [*SANDBOXES.items(), (FLOOR_SANDBOX, ("json", FLOOR_SANDBOX_PORT))]:
            self.wait_sandbox(code, port=port)

    def start_workers(
        self,
        *,
        prefix: str,
        processes: int,
        concurrency: int,
        queues: str | None = None,
        pool: str | None = None,
        env: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> list[str]:
        """`processes` Celery worker processes named <prefix>1..N; with `wait`, once each answers a ping."""
        names = [f"{prefix}{index}" for index in range(1, processes + 1)]
        self.forget(names)  # the floor's workers reuse no earlier command line
        for name in names:
            self.start_worker(name, concurrency=concurrency, loglevel="WARNING", queues=queues, pool=pool, env=env)
        if wait:
            self.wait_workers(names, broker_url=BROKER.url, timeout=60)
        return names


def redis_client() -> Any:
    import redis

    return redis.Redis(host=HOST, port=6379, db=REDIS_DB)


def queue_length(name: str) -> int:
    """Messages waiting in a queue: kombu's Redis lists (priority sub-lists included), or RabbitMQ's count."""
    if BROKER.name == "amqp":
        try:
            with harness.control_connection(BROKER.url) as connection:
                return int(connection.default_channel.queue_declare(queue=name, passive=True).message_count)
        except Exception:  # noqa: BLE001 - not declared yet: nothing waits in it
            return 0
    client = redis_client()
    keys = [name, *client.scan_iter(match=f"{name}\x06\x16*")]
    return sum(int(client.llen(key)) for key in keys)
