"""The chaos run's stack: PostgreSQL, a private Redis (or RabbitMQ) and Paygate's processes, on the shared harness.

Everything targets 127.0.0.1: the database `paygate_chaos` (dropped and recreated per run), a
redis-server started here on port 6391 with AOF (so it can be SIGKILLed and started again at
will, never touching the shared Redis on 6379), web on :8300 and the sandboxes on :8311-8313; the
payment workers on their queues and the webhook dispatcher, as the Procfile runs them.
With `--broker amqp` the broker is the machine's RabbitMQ (127.0.0.1:5672, a vhost named after
the database, made anew per run), which the run stops and starts again as a fault; the private
Redis then holds the cache only.
A second checkout running at the same time moves these with CHAOS_DB_NAME and CHAOS_PORT_OFFSET
(added to every port). Logs go to chaos/.work/logs; `ChaosStack.close()` stops every process
and makes sure the system PostgreSQL runs again even if the run stopped it and was interrupted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import harness
from harness import HarnessError, Process, dispatcher_argv, wait_for

ROOT = harness.ROOT
CHAOS_DIR = ROOT / "chaos"
WORK_DIR = CHAOS_DIR / ".work"
LOG_DIR = WORK_DIR / "logs"
REDIS_DIR = WORK_DIR / "redis"
SANDBOX_STATE_DIR = WORK_DIR / "sandboxes"
DATA_DIR = WORK_DIR / "data"
RESULTS_DIR = CHAOS_DIR / "results"

HOST = harness.HOST
DB_NAME = harness.db_name("CHAOS", "paygate_chaos")
_PORT_OFFSET = harness.port_offset("CHAOS")
PG_ADMIN_DSN = harness.PG_ADMIN_DSN
REDIS_PORT = 6391 + _PORT_OFFSET
RABBITMQ_PORT = 5672
RABBITMQ_VHOST = DB_NAME
AMQP_URL = f"amqp://guest:guest@{HOST}:{RABBITMQ_PORT}/{RABBITMQ_VHOST}"
BROKERS = harness.BROKERS

# The demo gateways (CONTRACT §5) on the chaos ports; the broker is the private Redis by default
# (`use_broker("amqp")`: RabbitMQ), the cache the private Redis whichever the broker.
STACK = harness.StackConfig(
    db_name=DB_NAME,
    web_port=8300 + _PORT_OFFSET,
    sandboxes=harness.demo_sandboxes(8311 + _PORT_OFFSET),
    redis_url=f"redis://{HOST}:{REDIS_PORT}/0",
    data_dir=DATA_DIR,
    amqp_url=AMQP_URL,
)
BROKER = STACK.broker
use_broker = BROKER.use
PSYCOPG_DSN = STACK.psycopg_dsn
WEB_PORT = STACK.web_port
WEB_URL = STACK.web_url
SANDBOXES = STACK.sandboxes
sandbox_url = STACK.sandbox_url

# A sandbox in `timeout` mode holds its answer this long; the gateways' read timeout is set below it.
SANDBOX_TIMEOUT_DELAY = 5.0
GATEWAY_CONNECT_TIMEOUT = 2.0
GATEWAY_READ_TIMEOUT = 3.0

# The API client the run's merchant requests, refunds and webhook endpoint belong to.
CLIENT_NAME = "chaos"
# The path of the run's webhook endpoint on its receiver (harness.Receiver).
WEBHOOK_PATH = "/hooks/chaos"
# The queues of the Procfile's `worker:` line; webhook deliveries have their own worker (`webhooks:`).
PAYMENT_QUEUES = "celery,celery.urgent"
WEBHOOK_WORKER = "webhooks"

ChaosError = HarnessError
http_get = harness.http_get
http_post_json = harness.http_post_json


def redis_ping() -> bool:
    return harness.redis_ping(REDIS_PORT)


# --- RabbitMQ on and off (the machine's own node; `--broker amqp` only) ----------------------------


def rabbitmqctl(*args: str, timeout: float = 120.0) -> str:
    result = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise ChaosError(f"rabbitmqctl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return result.stdout


def rabbitmq_up() -> bool:
    """An AMQP connection to the run's vhost opens (the node is up and its vhost exists)."""
    try:
        with harness.control_connection(AMQP_URL) as connection:
            connection.ensure_connection(max_retries=1)
        return True
    except Exception:  # noqa: BLE001 - down, starting or refusing: not up
        return False


def rabbitmq_stop() -> None:
    """Stop the node (every connection drops; what it confirmed is on disk)."""
    rabbitmqctl("stop")


def rabbitmq_running() -> bool:
    return subprocess.run(["rabbitmqctl", "ping"], capture_output=True, timeout=60, check=False).returncode == 0


def rabbitmq_start() -> None:
    """Start the node as the machine starts it (unless it runs), and wait until it accepts connections again.

    `rabbitmq-server -detached` returns before the node has registered, so readiness is polled
    over AMQP rather than asked of rabbitmqctl (which then answers that no node runs).
    """
    if not rabbitmq_running():
        subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60, check=False)
    wait_for(rabbitmq_up, timeout=120, what="RabbitMQ to accept connections", interval=0.5)


def rabbitmq_reset_vhost() -> None:
    if RABBITMQ_VHOST in rabbitmqctl("list_vhosts", "--quiet", "--no-table-headers").split():
        rabbitmqctl("delete_vhost", RABBITMQ_VHOST)
    rabbitmqctl("add_vhost", RABBITMQ_VHOST)
    rabbitmqctl("set_permissions", "-p", RABBITMQ_VHOST, "guest", ".*", ".*", ".*")


# --- PostgreSQL on and off (the full run stops the system cluster) ---------------------------------


def pg_ctl(action: str) -> str:
    versions = sorted(os.listdir("/etc/postgresql"))
    if not versions:
        raise ChaosError("no PostgreSQL cluster under /etc/postgresql")
    argv = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", action]
    if action == "stop":
        argv += ["-m", "fast"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0 and not (action == "start" and "already running" in result.stderr):
        raise ChaosError(f"pg_ctlcluster {action} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout + result.stderr


def pg_up() -> bool:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


# --- the environment -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    """Shorter-than-production timings, so that the run settles in minutes."""

    sweep_interval: int = 5
    sweep_grace: float = 10.0
    lookup_first_delay: float = 8.0
    lookup_interval: float = 12.0
    no_gateway_deadline: int = 120
    processing_deadline: int = 900
    health_check_interval: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 10.0
    breaker_cooldown: int = 10
    callback_sweep_interval: int = 10
    callback_delay: float = 0.3
    # Merchant webhooks: retries within the run (the production schedule spans a day).
    webhook_retry_schedule: str = "1,2,4,8,15,30,60"
    webhook_sweep_interval: int = 5
    # Customer actions (CONTRACT §11): an abandoned one expires this long after the gateway asked.
    action_deadline: int = 20

    def env(self) -> dict[str, str]:
        return {
            "PAYGATE_SWEEP_INTERVAL_SECONDS": str(self.sweep_interval),
            "PAYGATE_SWEEP_GRACE_SECONDS": str(self.sweep_grace),
            "PAYGATE_LOOKUP_FIRST_DELAY_SECONDS": str(self.lookup_first_delay),
            "PAYGATE_LOOKUP_INTERVAL_SECONDS": str(self.lookup_interval),
            "PAYGATE_NO_GATEWAY_DEADLINE_SECONDS": str(self.no_gateway_deadline),
            "PAYGATE_PROCESSING_DEADLINE_SECONDS": str(self.processing_deadline),
            "PAYGATE_HEALTH_CHECK_INTERVAL_SECONDS": str(self.health_check_interval),
            "PAYGATE_RETRY_BACKOFF_BASE_SECONDS": str(self.backoff_base),
            "PAYGATE_RETRY_BACKOFF_MAX_SECONDS": str(self.backoff_max),
            "PAYGATE_BREAKER_COOLDOWN_SECONDS": str(self.breaker_cooldown),
            "PAYGATE_BREAKER_PROBE_TIMEOUT_SECONDS": str(self.breaker_cooldown),
            "PAYGATE_WEBHOOK_RETRY_SCHEDULE": self.webhook_retry_schedule,
            "PAYGATE_WEBHOOK_SWEEP_INTERVAL_SECONDS": str(self.webhook_sweep_interval),
            "PAYGATE_ACTION_DEADLINE_SECONDS": str(self.action_deadline),
        }


def chaos_env(timings: Timings) -> dict[str, str]:
    """Production settings (DEBUG off, real secrets) on the chaos database, Redis and ports."""
    return STACK.env(
        {
            "PAYGATE_RATE_LIMIT": "",
            # Every simulated customer comes from 127.0.0.1: no per-address limit on the pay page.
            "PAYGATE_PAY_PAGE_RATE_PER_MINUTE": "0",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            # The run's webhook receiver listens on loopback, which DEBUG=False otherwise refuses.
            "PAYGATE_WEBHOOK_ALLOW_PRIVATE": "True",
            **timings.env(),
        }
    )


# --- the stack -------------------------------------------------------------------------------------


class ChaosStack(harness.Stack):
    def __init__(
        self,
        *,
        timings: Timings,
        web_workers: int = 2,
        worker_nodes: int = 2,
        worker_concurrency: int = 2,
        webhook_concurrency: int = 128,
        log: Callable[[str], None] = print,
    ) -> None:
        super().__init__(env=chaos_env(timings), log_dir=LOG_DIR)
        self.timings = timings
        self.web_workers = web_workers
        self.worker_nodes = worker_nodes
        self.worker_concurrency = worker_concurrency
        self.webhook_concurrency = webhook_concurrency
        self.api_key = ""
        self.postgres_stopped = False
        self.rabbitmq_stopped = False
        self.log = log

    @property
    def procs(self) -> dict[str, Process]:
        return self.processes

    def prepare_dirs(self) -> None:
        """A clean work folder per run: logs, Redis AOF, sandbox state files, metrics."""
        for folder in (LOG_DIR, REDIS_DIR, SANDBOX_STATE_DIR, DATA_DIR):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
        (DATA_DIR / "metrics").mkdir(parents=True, exist_ok=True)

    def start_all(self) -> dict[str, float]:
        """Bring the stack up; seconds taken by each step (independent steps run side by side)."""
        steps: dict[str, float] = {}
        started = time.monotonic()

        def step(name: str) -> None:
            nonlocal started
            steps[name] = round(time.monotonic() - started, 1)
            started = time.monotonic()

        busy = [port for port in [*STACK.ports, REDIS_PORT] if harness.port_in_use(port)]
        if busy:
            raise ChaosError(
                f"ports {busy} on {HOST} are in use (an earlier chaos run still running?); free them first"
            )
        if not pg_up():
            self.log("PostgreSQL is not answering; starting it")
            pg_ctl("start")
            wait_for(pg_up, timeout=60, what="PostgreSQL", interval=0.5)
        self.prepare_dirs()
        harness.recreate_database(DB_NAME, admin_dsn=PG_ADMIN_DSN)
        if BROKER.name == "amqp":
            if not rabbitmq_running():
                self.log("RabbitMQ is not answering; starting it")
                subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60, check=False)
                wait_for(rabbitmq_running, timeout=120, what="RabbitMQ to start", interval=1.0)
            rabbitmq_reset_vhost()
        self.start_redis()
        # The sandboxes need no database: they start while the migrations run.
        for code in SANDBOXES:
            self.start_chaos_sandbox(code, wait=False)
        step("database_and_redis")
        self.manage("migrate", "--noinput")
        step("migrate")
        seed = subprocess.Popen(
            [harness.PYTHON, "manage.py", "seed_demo", "--demo"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.api_key = self.manage("create_api_key", CLIENT_NAME).strip().splitlines()[-1].strip()
        seed_out, _ = seed.communicate(timeout=300)
        with open(LOG_DIR / "setup.log", "a") as log:
            log.write(f"\n===== manage.py seed_demo (rc={seed.returncode}) =====\n{seed_out}\n")
        if seed.returncode != 0:
            raise ChaosError(f"manage.py seed_demo failed ({seed.returncode}):\n{seed_out[-3000:]}")
        self.configure_database()
        step("seed_and_api_key")
        for index in range(1, self.worker_nodes + 1):
            self.start_worker_node(index)
        self.start_webhook_worker()
        self.start_beat(pidfile=WORK_DIR / "celerybeat.pid")
        for code, (_, port) in SANDBOXES.items():
            self.wait_sandbox(code, port=port)
        self.start_web(port=WEB_PORT, workers=self.web_workers, threads=4)
        wait_for(
            lambda: http_get(f"{WEB_URL}/readyz")[0] == 200, timeout=90, what="web /readyz", alive=self.check_alive
        )
        self.wait_workers(self.worker_names(), broker_url=BROKER.url)
        step("processes_ready")
        return steps

    def configure_database(self) -> None:
        """Operator settings (what the admin edits), made shorter for the run: gateway timeouts
        below the sandboxes' `timeout` delay, and the callback sweep every few seconds."""
        import psycopg

        with psycopg.connect(PSYCOPG_DSN, autocommit=True) as conn:
            conn.execute(
                "UPDATE gateways_gateway SET connect_timeout = %s, read_timeout = %s",
                (GATEWAY_CONNECT_TIMEOUT, GATEWAY_READ_TIMEOUT),
            )
            every = self.timings.callback_sweep_interval
            row = conn.execute(
                "SELECT id FROM django_celery_beat_intervalschedule WHERE every = %s AND period = 'seconds'", (every,)
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "INSERT INTO django_celery_beat_intervalschedule (every, period) VALUES "
                    "(%s, 'seconds') RETURNING id",
                    (every,),
                ).fetchone()
            conn.execute(
                "UPDATE django_celery_beat_periodictask SET interval_id = %s WHERE task = 'callbacks.sweep_unapplied'",
                (row[0],),
            )

    # --- individual processes (also used to restart them) ---

    def start_redis(
        self, *, port: int = REDIS_PORT, directory: Path | None = REDIS_DIR, name: str = "redis"
    ) -> Process:
        return super().start_redis(port=port, directory=directory, name=name)

    def start_chaos_sandbox(self, code: str, *, wait: bool = True) -> Process:
        data_format, port = SANDBOXES[code]
        return self.start_sandbox(
            code,
            data_format=data_format,
            port=port,
            callback_delay=self.timings.callback_delay,
            timeout_delay=SANDBOX_TIMEOUT_DELAY,
            state_file=SANDBOX_STATE_DIR / f"{code}.json",
            wait=wait,
        )

    def worker_names(self) -> list[str]:
        """Every Celery worker node: the payment workers (the webhook dispatcher is no Celery worker)."""
        return [f"worker-{index}" for index in range(1, self.worker_nodes + 1)]

    def start_worker_node(self, index: int) -> Process:
        """A payment worker, as the Procfile's `worker:` (the payment queues, not `webhooks`)."""
        return self.start_worker(
            f"worker-{index}", concurrency=self.worker_concurrency, pool="prefork", queues=PAYMENT_QUEUES
        )

    def start_webhook_worker(self) -> Process:
        """The webhook dispatcher, as the Procfile's `webhooks:`."""
        return self.start(WEBHOOK_WORKER, dispatcher_argv(threads=self.webhook_concurrency))

    def restart(self, name: str) -> Process:
        if name == "redis":
            return self.start_redis()
        if name == "beat":
            return self.start_beat(pidfile=WORK_DIR / "celerybeat.pid")
        return self.start(name)

    def workers(self) -> list[Process]:
        return [proc for name, proc in sorted(self.processes.items()) if name.startswith("worker-")]

    def postgres_stop(self) -> None:
        self.postgres_stopped = True
        pg_ctl("stop")

    def postgres_start(self) -> None:
        pg_ctl("start")
        wait_for(pg_up, timeout=60, what="PostgreSQL to accept connections", interval=0.2)
        self.postgres_stopped = False

    def rabbitmq_stop(self) -> None:
        self.rabbitmq_stopped = True
        rabbitmq_stop()

    def rabbitmq_start(self) -> None:
        rabbitmq_start()
        self.rabbitmq_stopped = False

    def close(self) -> None:
        super().close()
        if self.rabbitmq_stopped:
            # Never leave the machine's RabbitMQ down, whatever interrupted the run.
            try:
                self.rabbitmq_start()
            except (ChaosError, OSError, subprocess.SubprocessError) as exc:
                self.log(f"WARNING: could not start RabbitMQ again: {exc}")
        if self.postgres_stopped or not pg_up():
            # Never leave the shared PostgreSQL down, whatever interrupted the run.
            try:
                self.postgres_start()
            except ChaosError as exc:
                self.log(f"WARNING: could not start PostgreSQL again: {exc}")
