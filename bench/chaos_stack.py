"""The chaos run's stack: PostgreSQL, a private Redis, and Paygate's processes on chaos ports.

Everything targets 127.0.0.1: the database `paygate_chaos` (dropped and recreated per run), a
redis-server this module starts itself on port 6391 with AOF (so it can be SIGKILLed and started
again at will, never touching the shared Redis on 6379), web on :8300 and the sandboxes on
:8311-8313. Every child runs in its own session (process group) and logs to a file under
bench/.work/chaos/logs; `ChaosStack.close()` stops every group it started and makes sure the
system PostgreSQL is running again even if the run was interrupted while it was stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
WORK_DIR = BENCH_DIR / ".work" / "chaos"
LOG_DIR = WORK_DIR / "logs"
REDIS_DIR = WORK_DIR / "redis"
SANDBOX_STATE_DIR = WORK_DIR / "sandboxes"
DATA_DIR = WORK_DIR / "data"
RESULTS_DIR = BENCH_DIR / "results"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")

HOST = "127.0.0.1"
DB_NAME = "paygate_chaos"
PG_PORT = 5432
PG_ADMIN_DSN = f"postgresql://postgres@{HOST}:{PG_PORT}/postgres"
DATABASE_URL = f"postgres://postgres@{HOST}:{PG_PORT}/{DB_NAME}"
PSYCOPG_DSN = f"postgresql://postgres@{HOST}:{PG_PORT}/{DB_NAME}"
REDIS_PORT = 6391
BROKER_URL = f"redis://{HOST}:{REDIS_PORT}/0"
WEB_PORT = 8300
WEB_URL = f"http://{HOST}:{WEB_PORT}"
# code -> (data format, port): the demo gateways (CONTRACT §5) on the chaos ports.
SANDBOXES: dict[str, tuple[str, int]] = {"acmepay": ("json", 8311), "soapbank": ("xml", 8312), "globex": ("json", 8313)}
# A sandbox in `timeout` mode holds its answer this long; the gateways' read timeout is set below it.
SANDBOX_TIMEOUT_DELAY = 5.0
GATEWAY_CONNECT_TIMEOUT = 2.0
GATEWAY_READ_TIMEOUT = 3.0

T = TypeVar("T")


class ChaosError(RuntimeError):
    """The run cannot go on (a process died at start-up, a deadline passed, a port is taken)."""


def sandbox_url(code: str) -> str:
    return f"http://{HOST}:{SANDBOXES[code][1]}"


# --- polling and HTTP ----------------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    alive: Callable[[], None] | None = None,
) -> T:
    """Poll `predicate` until truthy; `ChaosError` at the deadline (or when `alive` raises)."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ChaosError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# /metrics needs a bearer token with DEBUG off; one per run, shared by the stack and the checks.
METRICS_TOKEN = secrets.token_urlsafe(32)


def http_get(url: str, *, timeout: float = 3.0, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """A GET on loopback without proxies; (0, b"") when nothing answers."""
    try:
        with _OPENER.open(urllib.request.Request(url, headers=dict(headers or {})), timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def http_post_json(url: str, payload: Mapping[str, Any] | None = None, *, timeout: float = 5.0) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(payload or {}).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with _OPENER.open(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def redis_ping(timeout: float = 0.5) -> bool:
    """PING the private Redis with a raw socket (no client library state to go stale)."""
    try:
        with socket.create_connection((HOST, REDIS_PORT), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


# --- PostgreSQL --------------------------------------------------------------------------------


def pg_cluster_version() -> str:
    versions = sorted(os.listdir("/etc/postgresql"))
    if not versions:
        raise ChaosError("no PostgreSQL cluster under /etc/postgresql")
    return versions[-1]


def pg_ctl(action: str) -> str:
    argv = ["pg_ctlcluster", "--skip-systemctl-redirect", pg_cluster_version(), "main", action]
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


def recreate_database() -> None:
    """Drop and create `paygate_chaos` (that name only)."""
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Proc:
    """A long-running child in its own session, logging (appending, across restarts) to one file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    # Set by the fault injector before it kills the process on purpose.
    expected_exit: bool = False

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== chaos: starting {self.name} at {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        self.expected_exit = False
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def signal_main(self, sig: int) -> None:
        if self.popen is None:
            return
        try:
            os.kill(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def children(self) -> list[int]:
        """Direct children of the main process (a prefork worker's pool processes)."""
        if not self.running():
            return []
        assert self.popen is not None
        pid = self.popen.pid
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return [int(item) for item in text.split()]

    def stop(self, *, timeout: float = 15.0) -> None:
        stop_procs([self], timeout=timeout)


def stop_procs(procs: Iterable[Proc], *, timeout: float = 15.0) -> None:
    """SIGTERM every group, wait with one deadline, then SIGKILL what is left (stragglers too)."""
    procs = [proc for proc in procs if proc.popen is not None]
    for proc in procs:
        proc.expected_exit = True
        if proc.running():
            proc.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        assert proc.popen is not None
        try:
            proc.popen.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.signal_group(signal.SIGKILL)
            try:
                proc.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass
        proc.signal_group(signal.SIGKILL)


def run_checked(argv: list[str], env: Mapping[str, str], *, what: str, log_path: Path, timeout: float = 300.0) -> str:
    """Run a one-shot command to completion (output appended to `log_path`); its stdout."""
    result = subprocess.run(
        argv,
        cwd=ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    with open(log_path, "a") as log:
        log.write(f"\n===== {what} (rc={result.returncode}) =====\n{result.stdout}\n{result.stderr}\n")
    if result.returncode != 0:
        raise ChaosError(f"{what} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout


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
        }


def chaos_env(timings: Timings) -> dict[str, str]:
    """Production settings (DEBUG off, real secrets) on the chaos database, Redis and ports."""
    from cryptography.fernet import Fernet

    env = {
        name: value
        for name, value in os.environ.items()
        # Nothing from the caller's Paygate configuration may leak into the run.
        if not name.startswith(("PAYGATE_", "CELERY_", "DJANGO_", "PROMETHEUS_"))
        and name not in {"DATABASE_URL", "DEBUG", "SECRET_KEY", "FERNET_KEYS", "LOG_LEVEL", "LOG_FORMAT"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "paygate.settings",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": DATABASE_URL,
            "CELERY_BROKER_URL": BROKER_URL,
            "PAYGATE_PUBLIC_URL": WEB_URL,
            "PAYGATE_DATA_DIR": str(DATA_DIR),
            "PROMETHEUS_MULTIPROC_DIR": str(DATA_DIR / "metrics"),
            "PAYGATE_DEMO_BASE_URLS": ",".join(f"{code}={sandbox_url(code)}" for code in SANDBOXES),
            # The sandboxes are plain http on loopback, which DEBUG=False otherwise refuses to call.
            "PAYGATE_GATEWAY_ALLOWED_HOSTS": HOST,
            "PAYGATE_RATE_LIMIT": "",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "DEBUG": "False",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "FERNET_KEYS": Fernet.generate_key().decode(),
            "PAYGATE_METRICS_TOKEN": METRICS_TOKEN,
            "PAYGATE_FINGERPRINT_KEYS": secrets.token_urlsafe(32),
            # Plain HTTP on loopback: no redirect to https:// with DEBUG off.
            "SECURE_SSL_REDIRECT": "False",
        }
    )
    env.update(timings.env())
    return env


# --- the stack -------------------------------------------------------------------------------------


_control_app: Any = None
_control_lock = threading.Lock()


def ping_workers(timeout: float = 1.0) -> set[str]:
    """Hostnames of the celery workers on the private broker that answer a control ping now."""
    global _control_app
    with _control_lock:
        if _control_app is None:
            from celery import Celery

            _control_app = Celery("chaos-control", broker=BROKER_URL)
            _control_app.conf.broker_connection_retry_on_startup = False
            _control_app.conf.broker_connection_max_retries = 1
            _control_app.conf.broker_connection_timeout = 2
            _control_app.conf.broker_transport_options = {"socket_connect_timeout": 1, "socket_timeout": 2}
        try:
            replies = _control_app.control.ping(timeout=timeout) or []
        except Exception:  # noqa: BLE001 - the broker may be down (on purpose); callers poll
            return set()
    return {name for reply in replies for name in reply}


@dataclass
class ChaosStack:
    timings: Timings
    web_workers: int = 2
    worker_nodes: int = 2
    worker_concurrency: int = 2
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    api_key: str = ""
    postgres_stopped: bool = False
    log: Callable[[str], None] = print

    def __post_init__(self) -> None:
        self.env = chaos_env(self.timings)

    # --- set-up ---

    def prepare_dirs(self) -> None:
        """A clean work folder per run: logs, Redis AOF, sandbox state files, metrics."""
        for folder in (LOG_DIR, REDIS_DIR, SANDBOX_STATE_DIR, DATA_DIR):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
        # Run-time output only: keep it out of version control.
        (WORK_DIR / ".gitignore").write_text("*\n")
        (DATA_DIR / "metrics").mkdir(parents=True, exist_ok=True)

    def check_ports(self) -> None:
        ports = [WEB_PORT, REDIS_PORT, *(port for _, port in SANDBOXES.values())]
        busy = [port for port in ports if port_in_use(port)]
        if busy:
            raise ChaosError(
                f"ports {busy} on {HOST} are in use (an earlier chaos run still running?); free them first"
            )

    def manage(self, *args: str, timeout: float = 300.0) -> str:
        return run_checked(
            [PYTHON, "manage.py", *args],
            self.env,
            what=f"manage.py {' '.join(args)}",
            log_path=LOG_DIR / "setup.log",
            timeout=timeout,
        )

    def _add(self, name: str, argv: list[str]) -> Proc:
        proc = Proc(name=name, argv=argv, env=dict(self.env), log_path=LOG_DIR / f"{name}.log")
        self.procs[name] = proc
        return proc.start()

    def start(self) -> dict[str, float]:
        """Bring the stack up; seconds taken by each step (independent steps run side by side)."""
        steps: dict[str, float] = {}
        started = time.monotonic()

        def step(name: str) -> None:
            nonlocal started
            steps[name] = round(time.monotonic() - started, 1)
            started = time.monotonic()

        self.check_ports()
        if not pg_up():
            self.log("PostgreSQL is not answering; starting it")
            pg_ctl("start")
            wait_for(pg_up, timeout=60, what="PostgreSQL", interval=0.5)
        self.prepare_dirs()
        recreate_database()
        self.start_redis()
        # The sandboxes need no database: they start while the migrations run.
        for code in SANDBOXES:
            self.start_sandbox(code)
        step("database_and_redis")
        self.manage("migrate", "--noinput")
        step("migrate")
        seed = subprocess.Popen(
            [PYTHON, "manage.py", "seed_demo", "--demo"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.api_key = self.manage("create_api_key", "chaos").strip().splitlines()[-1].strip()
        seed_out, _ = seed.communicate(timeout=300)
        with open(LOG_DIR / "setup.log", "a") as log:
            log.write(f"\n===== manage.py seed_demo (rc={seed.returncode}) =====\n{seed_out}\n")
        if seed.returncode != 0:
            raise ChaosError(f"manage.py seed_demo failed ({seed.returncode}):\n{seed_out[-3000:]}")
        self.configure_database()
        step("seed_and_api_key")
        self._add(
            "web",
            [
                str(VENV_BIN / "granian"),
                "paygate.wsgi:application",
                "--interface",
                "wsgi",
                "--host",
                HOST,
                "--port",
                str(WEB_PORT),
                "--workers",
                str(self.web_workers),
                "--blocking-threads",
                "4",
                "--blocking-threads-idle-timeout",
                "600",
                "--no-ws",
                "--respawn-failed-workers",
                "--workers-kill-timeout",
                "10",
                "--access-log",
            ],
        )
        for index in range(1, self.worker_nodes + 1):
            self.start_worker(index)
        self.start_beat()
        for code in SANDBOXES:
            wait_for(
                lambda code=code: http_get(f"{sandbox_url(code)}/_sandbox/mode")[0] == 200,
                timeout=60,
                what=f"sandbox {code}",
                alive=self.check_alive,
            )
        wait_for(
            lambda: http_get(f"{WEB_URL}/readyz")[0] == 200, timeout=90, what="web /readyz", alive=self.check_alive
        )
        wait_for(
            lambda: set(self.worker_hostnames()) <= ping_workers(),
            timeout=90,
            what="celery workers to answer a ping",
            interval=0.3,
            alive=self.check_alive,
        )
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

    def start_redis(self) -> Proc:
        proc = self.procs.get("redis")
        if proc is None:
            proc = Proc(
                name="redis",
                argv=[
                    "redis-server",
                    "--port",
                    str(REDIS_PORT),
                    "--bind",
                    HOST,
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--dir",
                    str(REDIS_DIR),
                    "--save",
                    "",
                    "--daemonize",
                    "no",
                    "--protected-mode",
                    "yes",
                ],
                env=dict(os.environ),
                log_path=LOG_DIR / "redis.log",
            )
            self.procs["redis"] = proc
        proc.start()
        wait_for(
            redis_ping,
            timeout=30,
            what="the private redis-server",
            interval=0.05,
            alive=lambda: self._alive_or_raise(proc),
        )
        return proc

    def start_sandbox(self, code: str) -> Proc:
        data_format, port = SANDBOXES[code]
        name = f"sandbox-{code}"
        proc = self.procs.get(name)
        if proc is None:
            proc = Proc(
                name=name,
                argv=[
                    PYTHON,
                    "manage.py",
                    "run_sandbox_gateway",
                    "--code",
                    code,
                    "--format",
                    data_format,
                    "--port",
                    str(port),
                    "--state-file",
                    str(SANDBOX_STATE_DIR / f"{code}.json"),
                    "--callback-delay",
                    str(self.timings.callback_delay),
                    "--timeout-delay",
                    str(SANDBOX_TIMEOUT_DELAY),
                ],
                env=dict(self.env),
                log_path=LOG_DIR / f"{name}.log",
            )
            self.procs[name] = proc
        return proc.start()

    def worker_hostnames(self) -> list[str]:
        return [f"chaos-w{index}@{socket.gethostname()}" for index in range(1, self.worker_nodes + 1)]

    def start_worker(self, index: int) -> Proc:
        name = f"worker-{index}"
        proc = self.procs.get(name)
        if proc is None:
            proc = Proc(
                name=name,
                argv=[
                    str(VENV_BIN / "celery"),
                    "-A",
                    "paygate",
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--pool",
                    "prefork",
                    "--concurrency",
                    str(self.worker_concurrency),
                    "--without-gossip",
                    "--without-mingle",
                    "--hostname",
                    f"chaos-w{index}@%h",
                ],
                env=dict(self.env),
                log_path=LOG_DIR / f"{name}.log",
            )
            self.procs[name] = proc
        return proc.start()

    def start_beat(self) -> Proc:
        proc = self.procs.get("beat")
        if proc is None:
            proc = Proc(
                name="beat",
                argv=[
                    str(VENV_BIN / "celery"),
                    "-A",
                    "paygate",
                    "beat",
                    "--loglevel",
                    "INFO",
                    "--pidfile",
                    str(WORK_DIR / "celerybeat.pid"),
                ],
                env=dict(self.env),
                log_path=LOG_DIR / "beat.log",
            )
            self.procs["beat"] = proc
        (WORK_DIR / "celerybeat.pid").unlink(missing_ok=True)
        return proc.start()

    def restart(self, name: str) -> Proc:
        if name == "redis":
            return self.start_redis()
        if name == "beat":
            return self.start_beat()
        if name.startswith("worker-"):
            return self.start_worker(int(name.removeprefix("worker-")))
        if name.startswith("sandbox-"):
            return self.start_sandbox(name.removeprefix("sandbox-"))
        return self.procs[name].start()

    def workers(self) -> list[Proc]:
        return [proc for name, proc in sorted(self.procs.items()) if name.startswith("worker-")]

    # --- PostgreSQL on and off ---

    def postgres_stop(self) -> None:
        self.postgres_stopped = True
        pg_ctl("stop")

    def postgres_start(self) -> None:
        pg_ctl("start")
        wait_for(pg_up, timeout=60, what="PostgreSQL to accept connections", interval=0.2)
        self.postgres_stopped = False

    # --- health ---

    @staticmethod
    def _alive_or_raise(proc: Proc) -> None:
        if proc.popen is not None and proc.popen.poll() is not None:
            raise ChaosError(f"{proc.name} exited with {proc.popen.returncode}; log tail:\n{proc.log_tail()}")

    def check_alive(self) -> None:
        for proc in self.procs.values():
            self._alive_or_raise(proc)

    def close(self) -> None:
        procs = [proc for name, proc in self.procs.items() if name != "redis"]
        stop_procs(procs)
        if "redis" in self.procs:
            stop_procs([self.procs["redis"]], timeout=5)
        if self.postgres_stopped or not pg_up():
            # Never leave the shared PostgreSQL down, whatever interrupted the run.
            try:
                self.postgres_start()
            except ChaosError as exc:
                self.log(f"WARNING: could not start PostgreSQL again: {exc}")
