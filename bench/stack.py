"""The production shape as subprocesses on bench ports, and the polling helpers to drive it.

Everything here targets 127.0.0.1, a dedicated PostgreSQL database (`paygate_bench`, dropped
and recreated per run) and a dedicated Redis database (14), so that a `make run` or a test
run on the same machine is never disturbed. Every child is started in its own session
(process group); `Stack.close()` sends SIGTERM to each group it started, then SIGKILL to
whatever is left after a deadline.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
WORK_DIR = BENCH_DIR / ".work"
RESULTS_DIR = BENCH_DIR / "results"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")

HOST = "127.0.0.1"
# Two checkouts on one machine can bench side by side: BENCH_DB_NAME, BENCH_REDIS_DB and
# BENCH_PORT_OFFSET move the database, the Redis database and every port of the second one.
DB_NAME = os.environ.get("BENCH_DB_NAME", "paygate_bench")
PG_ADMIN_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
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

T = TypeVar("T")


class BenchError(RuntimeError):
    """The bench cannot go on (a process died, a deadline passed, a port is taken)."""


# --- polling -----------------------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    alive: Callable[[], None] | None = None,
) -> T:
    """Poll `predicate` until it returns a truthy value; raise `BenchError` at the deadline.

    `alive` is called on every round and should raise if something the wait depends on died,
    so that a crashed process fails the wait at once rather than at its deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def http_get(url: str, *, timeout: float = 2.0) -> tuple[int, bytes]:
    """A GET on loopback without proxies; (0, b"") when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def http_post_json(url: str, payload: Mapping[str, Any] | None = None, *, timeout: float = 5.0) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        url, data=json.dumps(payload or {}).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with opener.open(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def sandbox_url(code: str) -> str:
    return f"http://{HOST}:{SANDBOXES[code][1]}"


def sandbox_up(code: str) -> bool:
    return http_get(f"{sandbox_url(code)}/_sandbox/mode")[0] == 200


# --- environment -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    secret_key: str
    fernet_key: str
    fingerprint_key: str

    @classmethod
    def generate(cls) -> Secrets:
        from cryptography.fernet import Fernet

        return cls(
            secret_key=secrets.token_urlsafe(50),
            fernet_key=Fernet.generate_key().decode(),
            fingerprint_key=secrets.token_urlsafe(32),
        )


_FOREIGN_PREFIXES = ("PAYGATE_", "CELERY_", "DJANGO_", "SECURE_", "GUNICORN_")
_FOREIGN_NAMES = {
    "DATABASE_URL",
    "DEBUG",
    "ALLOWED_HOSTS",
    "SECRET_KEY",
    "FERNET_KEYS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "SESSION_COOKIE_SECURE",
    "CSRF_TRUSTED_ORIGINS",
    "PROMETHEUS_MULTIPROC_DIR",
    "WEB_CONCURRENCY",
    "WORKER_CONCURRENCY",
}


def bench_env(data_dir: Path, run_secrets: Secrets, *, settings_module: str = "paygate.settings") -> dict[str, str]:
    """The environment of every bench process: production settings on the bench database and Redis db."""
    env = {
        name: value
        for name, value in os.environ.items()
        # Nothing from the caller's Paygate configuration may leak into the bench.
        if not name.startswith(_FOREIGN_PREFIXES) and name.removesuffix("_FILE") not in _FOREIGN_NAMES
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": settings_module,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": DATABASE_URL,
            "CELERY_BROKER_URL": BROKER_URL,
            "PAYGATE_PUBLIC_URL": f"http://{HOST}:{WEB_PORT}",
            "PAYGATE_DATA_DIR": str(data_dir),
            "PAYGATE_DEMO_BASE_URLS": ",".join(f"{code}={sandbox_url(code)}" for code in SANDBOXES),
            # The sandboxes are plain http on loopback, which DEBUG=False otherwise refuses to call.
            "PAYGATE_GATEWAY_ALLOWED_HOSTS": HOST,
            "PROMETHEUS_MULTIPROC_DIR": str(data_dir / "metrics"),
            "LOG_LEVEL": "WARNING",
            # The production shape: DEBUG off (no debug cursor on every query) with real secrets.
            "DEBUG": "False",
            "SECRET_KEY": run_secrets.secret_key,
            "FERNET_KEYS": run_secrets.fernet_key,
            "PAYGATE_FINGERPRINT_KEYS": run_secrets.fingerprint_key,
            # TLS is terminated in front of Paygate in production; the bench speaks plain HTTP on
            # loopback, which DEBUG=False would otherwise redirect to https://.
            "SECURE_SSL_REDIRECT": "False",
            # The per-key limit still runs (one cache increment per request) but never trips: one
            # bench key sends more than a merchant's default 6000/minute on purpose.
            "PAYGATE_RATE_LIMIT": "1000000/second",
        }
    )
    return env


# --- database and broker -----------------------------------------------------------------------


def recreate_database() -> None:
    """Drop and create `paygate_bench` (that name only) so every run starts from an empty database."""
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def redis_client() -> Any:
    import redis

    return redis.Redis(host=HOST, port=6379, db=REDIS_DB)


def flush_broker() -> None:
    """Empty Redis db 14, the bench's own database, and nothing else."""
    redis_client().flushdb()


def queue_length(name: str) -> int:
    """Messages waiting in a kombu Redis queue (its priority sub-lists included)."""
    client = redis_client()
    keys = [name, *[key for key in client.scan_iter(match=f"{name}\x06\x16*")]]
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


def purge_queue(name: str) -> None:
    client = redis_client()
    for key in [name, *client.scan_iter(match=f"{name}\x06\x16*")]:
        client.delete(key)


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.popen.returncode}; log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def signal_leader(self, sig: int) -> None:
        """Signal the process we started: gunicorn's and celery's masters then stop their children cleanly."""
        if self.popen is not None and self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass

    def signal_group(self, sig: int) -> None:
        """Signal this child's process group (its session, which we created): gunicorn and celery children too."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_procs(procs: Iterable[Proc], *, timeout: float = 20.0) -> None:
    """SIGTERM every process we started, wait for all with one deadline, then SIGKILL their whole groups."""
    procs = [proc for proc in procs if proc.popen is not None]
    for proc in procs:
        proc.signal_leader(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        assert proc.popen is not None
        remaining = max(deadline - time.monotonic(), 0.1)
        try:
            proc.popen.wait(remaining)
        except subprocess.TimeoutExpired:
            proc.signal_group(signal.SIGKILL)
            proc.popen.wait(5)
        # Children left behind by a leader that exited (e.g. a gunicorn worker) go too.
        proc.signal_group(signal.SIGKILL)


def run_checked(argv: list[str], env: Mapping[str, str], *, what: str, timeout: float = 300.0) -> str:
    """Run a one-shot command to completion; its stdout, or `BenchError` with its output."""
    result = subprocess.run(
        argv, cwd=ROOT, env=dict(env), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise BenchError(f"{what} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout


@dataclass
class Stack:
    """The processes of one bench configuration; a context manager that always tears them down."""

    env: dict[str, str]
    log_dir: Path
    procs: list[Proc] = field(default_factory=list)
    # Every process group this stack ever started (each child leads its own), for CPU accounting.
    pgids: set[int] = field(default_factory=set)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # The gateways last, so that nothing in flight towards them is cut off by their exit.
        stop_procs([proc for proc in self.procs if not proc.name.startswith("sandbox-")])
        stop_procs([proc for proc in self.procs if proc.name.startswith("sandbox-")])

    def add(self, name: str, argv: list[str], *, env: Mapping[str, str] | None = None) -> Proc:
        proc = Proc(name=name, argv=argv, env=dict(env or self.env), log_path=self.log_dir / f"{name}.log")
        self.procs.append(proc)
        proc.start()
        self.pgids.add(proc.pid)
        return proc

    def stop(self, names: Iterable[str], *, timeout: float = 20.0) -> None:
        wanted = set(names)
        stop_procs([proc for proc in self.procs if proc.name in wanted], timeout=timeout)
        self.procs = [proc for proc in self.procs if proc.name not in wanted]

    def check_alive(self) -> None:
        for proc in self.procs:
            proc.check_alive()

    # --- one-shot steps ---

    def manage(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300.0) -> str:
        return run_checked(
            [PYTHON, "manage.py", *args], env or self.env, what=f"manage.py {' '.join(args)}", timeout=timeout
        )

    def prepare(self, *, floor_env: Mapping[str, str] | None = None) -> str:
        """Fresh database and broker db, migrations, demo seed on the bench sandboxes; returns an API key."""
        busy = [port for port in [WEB_PORT, FLOOR_PORT, *(port for _, port in SANDBOXES.values())] if port_in_use(port)]
        if busy:
            raise BenchError(f"ports {busy} on {HOST} are in use (a previous bench still running?); free them first")
        recreate_database()
        flush_broker()
        # prometheus_client's multiprocess files of an earlier run would be added to this one's.
        metrics_dir = Path(self.env["PROMETHEUS_MULTIPROC_DIR"])
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput")
        if floor_env is not None:
            self.manage("migrate", "floor", "--noinput", env=floor_env)
        self.manage("seed_demo", "--demo")
        return self.manage("create_api_key", "bench").strip().splitlines()[-1].strip()

    # --- long-running processes ---

    def start_sandboxes(self) -> None:
        for code, (data_format, port) in SANDBOXES.items():
            self.add(
                f"sandbox-{code}",
                [
                    PYTHON,
                    "manage.py",
                    "run_sandbox_gateway",
                    "--code",
                    code,
                    "--format",
                    data_format,
                    "--port",
                    str(port),
                    "--callback-delay",
                    "0",
                ],
            )
        for code in SANDBOXES:
            wait_for(partial(sandbox_up, code), timeout=30, what=f"sandbox {code}", alive=self.check_alive)

    def start_web(
        self,
        *,
        name: str,
        port: int,
        workers: int,
        threads: int = 1,
        env: Mapping[str, str] | None = None,
        server: str = "granian",
    ) -> None:
        """The web server: `workers` processes of `threads` threads each, named on the command line.

        granian (production, as the Procfile and the image start it): WSGI on `threads` blocking
        threads per process. gunicorn (for comparison): sync workers, or with `threads` > 1 gthread
        workers of that many threads each.
        """
        if server == "granian":
            argv = [
                str(VENV_BIN / "granian"),
                "--interface",
                "wsgi",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--blocking-threads",
                str(threads),
                "--blocking-threads-idle-timeout",
                "600",
                "--no-ws",
                "paygate.wsgi:application",
            ]
        else:
            argv = [
                str(VENV_BIN / "gunicorn"),
                "paygate.wsgi",
                "--bind",
                f"{HOST}:{port}",
                "--workers",
                str(workers),
                "--graceful-timeout",
                "10",
            ]
            if threads > 1:
                argv += ["--worker-class", "gthread", "--threads", str(threads)]
            else:
                argv += ["--worker-class", "sync", "--threads", "1"]
        self.add(name, argv, env=env)
        wait_for(
            lambda: http_get(f"http://{HOST}:{port}/healthz")[0] == 200,
            timeout=60,
            what=f"{name} /healthz",
            alive=self.check_alive,
        )

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
        """Start `processes` celery worker processes; with `wait`, return once each answers a ping."""
        hostnames = []
        for index in range(1, processes + 1):
            hostname = f"{prefix}{index}-{os.getpid()}@bench"
            argv = [
                str(VENV_BIN / "celery"),
                "-A",
                "paygate",
                "worker",
                "--loglevel",
                "WARNING",
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                hostname,
            ]
            if queues:
                argv += ["--queues", queues]
            self.add(f"{prefix}{index}", argv, env=env)
            hostnames.append(hostname)
        if wait:
            wait_for(
                lambda: set(hostnames) <= ping_workers(),
                timeout=60,
                what=f"{prefix} workers to answer a ping",
                interval=0.2,
                alive=self.check_alive,
            )
        return hostnames

    def start_beat(self, data_dir: Path) -> None:
        self.add(
            "beat",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "paygate",
                "beat",
                "--loglevel",
                "WARNING",
                "--pidfile",
                str(data_dir / "celerybeat.pid"),
            ],
        )


_control_app: Any = None


def ping_workers(timeout: float = 0.5) -> set[str]:
    """Hostnames of the celery workers on the bench broker that answer a control ping now."""
    global _control_app
    if _control_app is None:
        from celery import Celery

        _control_app = Celery("bench-control", broker=BROKER_URL)
    try:
        replies = _control_app.control.ping(timeout=timeout) or []
    except Exception:  # the broker connection can fail while things start; the caller polls
        return set()
    return {name for reply in replies for name in reply}


def install_signal_handlers() -> None:
    """SIGTERM behaves like Ctrl-C, so `finally:` blocks tear the stack down either way."""

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)


def child_python(script: str, *args: str, env: Mapping[str, str], timeout: float = 600.0) -> str:
    """Run one of bench's own scripts with the venv's Python in `env`; returns its stdout."""
    return run_checked([PYTHON, str(BENCH_DIR / script), *args], env, what=f"bench/{script}", timeout=timeout)
