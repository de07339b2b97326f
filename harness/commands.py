"""The command lines of Paygate's processes, their readiness probes and the environment they run in."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.process import ROOT

# The interpreter running the harness: the project's virtual environment under make.
PYTHON = sys.executable
HOST = "127.0.0.1"
METRICS_TOKEN = secrets.token_urlsafe(32)


def web_argv() -> list[str]:
    """The production web process (granian); it reads PAYGATE_BIND, WEB_CONCURRENCY and WEB_THREADS."""
    return [str(ROOT / "bin" / "web")]


def worker_argv(
    *, hostname: str, concurrency: int, loglevel: str = "INFO", queues: str | None = None, pool: str | None = None
) -> list[str]:
    argv = [PYTHON, "-m", "celery", "-A", "paygate", "worker", "--loglevel", loglevel]
    argv += ["--concurrency", str(concurrency), "--without-gossip", "--without-mingle", "--hostname", hostname]
    if pool:
        argv += ["--pool", pool]
    if queues:
        argv += ["--queues", queues]
    return argv


def dispatcher_argv(*, threads: int | None = None) -> list[str]:
    """The webhook dispatcher, as the Procfile's `webhooks:` runs it."""
    argv = [PYTHON, "manage.py", "run_webhook_dispatcher"]
    return argv if threads is None else [*argv, "--threads", str(threads)]


def beat_argv(*, pidfile: Path, loglevel: str = "INFO") -> list[str]:
    return [PYTHON, "-m", "celery", "-A", "paygate", "beat", "--loglevel", loglevel, "--pidfile", str(pidfile)]


def sandbox_argv(
    *,
    code: str,
    data_format: str,
    port: int,
    callback_delay: float,
    timeout_delay: float | None = None,
    state_file: Path | None = None,
) -> list[str]:
    argv = [PYTHON, "-m", "sandbox", "--code", code, "--format", data_format]
    argv += ["--port", str(port), "--callback-delay", str(callback_delay)]
    if timeout_delay is not None:
        argv += ["--timeout-delay", str(timeout_delay)]
    if state_file is not None:
        argv += ["--state-file", str(state_file)]
    return argv


def redis_argv(*, port: int, directory: Path | None = None) -> list[str]:
    """A private redis-server on loopback; with `directory`, an append-only file there survives a SIGKILL."""
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--daemonize", "no"]
    if directory is None:
        return [*argv, "--appendonly", "no"]
    return [*argv, "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(directory)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def redis_ping(port: int, timeout: float = 0.5) -> bool:
    """PING a Redis with a raw socket (no client library state to go stale across restarts)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


_control_mailbox: Any = None
_control_lock = threading.Lock()


def control_connection(broker_url: str) -> Any:
    """A kombu connection to `broker_url` itself, for control commands (ping) from outside the stack.

    Never the app's configured broker: Celery reads CELERY_BROKER_URL (and its _READ/_WRITE
    variants) from the environment in preference to the URL an app is given, so a control app
    made with `broker=...` in a shell that exported CELERY_BROKER_URL would ping another broker.
    The broker may be down (a fault run stops it on purpose): the connection fails fast, the
    caller polls.
    """
    from kombu import Connection

    if broker_url.startswith(("redis://", "rediss://")):
        options: dict[str, Any] = {"socket_connect_timeout": 1, "socket_timeout": 2}
    else:
        options = {}
    return Connection(broker_url, connect_timeout=2, transport_options=options)


def _mailbox() -> Any:
    """Celery's control mailbox (same exchange and queue arguments as the workers'), without the app's
    producer pool: that pool connects to the app's configured broker, which the environment decides."""
    global _control_mailbox
    if _control_mailbox is None:
        from celery import Celery
        from kombu.pidbox import Mailbox

        conf = Celery("harness-control", set_as_current=False).conf
        _control_mailbox = Mailbox(
            conf.control_exchange,
            type="fanout",
            accept=["json"],
            serializer="json",
            queue_ttl=conf.control_queue_ttl,
            reply_queue_ttl=conf.control_queue_ttl,
            queue_expires=conf.control_queue_expires,
            queue_exclusive=conf.control_queue_exclusive,
            queue_durable=conf.control_queue_durable,
            reply_queue_expires=conf.control_queue_expires,
        )
    return _control_mailbox


def ping_workers(broker_url: str, timeout: float = 1.0) -> set[str]:
    """Hostnames of the Celery workers on `broker_url` that answer a control ping now."""
    with _control_lock:
        try:
            with control_connection(broker_url) as connection:
                connection.ensure_connection(max_retries=1)
                replies = _mailbox()(connection)._broadcast("ping", reply=True, timeout=timeout) or []
        except Exception:  # noqa: BLE001 - the broker connection can fail while things start; callers poll
            return set()
    return {name for reply in replies for name in reply}


_FOREIGN_PREFIXES = ("PAYGATE_", "CELERY_", "DJANGO_", "SECURE_", "GUNICORN_", "PROMETHEUS_")
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
    "WEB_CONCURRENCY",
    "WEB_THREADS",
    "WORKER_CONCURRENCY",
}


def isolated_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any Paygate configuration of the caller, plus `overrides`.

    Production settings with fresh secrets, for a benchmark or a fault run on its own database.
    """
    from cryptography.fernet import Fernet

    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_FOREIGN_PREFIXES) and name.removesuffix("_FILE") not in _FOREIGN_NAMES
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "paygate.settings",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "False",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "FERNET_KEYS": Fernet.generate_key().decode(),
            "PAYGATE_FINGERPRINT_KEYS": secrets.token_urlsafe(32),
            "PAYGATE_VAULT_KEYS": Fernet.generate_key().decode(),
            # /metrics needs a bearer token with DEBUG off; one per process that runs a stack.
            "PAYGATE_METRICS_TOKEN": METRICS_TOKEN,
            # TLS ends in front of Paygate in production; these runs speak plain HTTP on loopback.
            "SECURE_SSL_REDIRECT": "False",
            # The sandboxes are plain http on loopback, which DEBUG=False otherwise refuses to call.
            "PAYGATE_GATEWAY_ALLOWED_HOSTS": HOST,
        }
    )
    env.update(overrides)
    return env


def recreate_database(name: str, *, admin_dsn: str = f"postgresql://postgres@{HOST}:5432/postgres") -> None:
    """Drop and create the database `name` (that one only), so that a run starts empty."""
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


BROKERS = ("redis", "amqp")


class Broker:
    """The broker a run uses: Redis unless `use("amqp")` picked RabbitMQ."""

    def __init__(self, *, redis_url: str, amqp_url: str) -> None:
        self.name = "redis"
        self._urls = {"redis": redis_url, "amqp": amqp_url}

    @property
    def url(self) -> str:
        return self._urls[self.name]

    def use(self, name: str) -> None:
        if name not in BROKERS:
            raise ValueError(f"broker must be one of {BROKERS}")
        self.name = name
