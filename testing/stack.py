"""The real stack of the integration tests: a Celery worker (and beat) in processes of their own, the
sandbox gateways as processes over HTTP on loopback, and polling until something has happened.

The database is the test database of whatever backend is configured (SQLite file by default,
PostgreSQL with DATABASE_URL), and the broker is the configured one (the filesystem transport by
default, Redis or RabbitMQ with CELERY_BROKER_URL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

import harness

ROOT = Path(__file__).resolve().parent.parent
# In the suite's data folder (`make test TEST_DATA_DIR=...`), so that two runs side by side keep
# their logs and pid files apart.
LOG_DIR = Path(os.environ.get("PAYGATE_DATA_DIR", ROOT / ".data" / "test")) / "logs"

# Gateways in tests give up quickly, so that timeouts do not slow the suite down.
TEST_READ_TIMEOUT = 1.5
SANDBOX_TIMEOUT_DELAY = 4.0

WEBHOOK_RETRY_SCHEDULE = "0.5,1"
WEBHOOK_TIMEOUT_SECONDS = "2"


def services_configured() -> bool:
    """PostgreSQL, and Redis as the broker, or RabbitMQ as the broker with Redis as the cache."""
    broker = os.environ.get("CELERY_BROKER_URL") or ""
    cache = os.environ.get("PAYGATE_CACHE_URL") or broker
    return bool(os.environ.get("DATABASE_URL")) and broker.startswith(("redis", "amqp")) and cache.startswith("redis")


def wait_for(predicate: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05, message: str = "") -> Any:
    """Poll until `predicate()` is truthy and return its value; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


class Process(harness.Process):
    """A child process of the test stack (worker, beat, web, a private Redis) in its own process group,
    logging to <data folder>/logs/<name>.log."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        super().__init__(name, argv, env, LOG_DIR / f"{name}.log")


class Sandbox:
    def __init__(self, code: str, data_format: str, port: int) -> None:
        self.code = code
        self.data_format = data_format
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.process = Process(
            f"sandbox-{code}",
            harness.sandbox_argv(
                code=code,
                data_format=data_format,
                port=port,
                callback_delay=0.1,
                timeout_delay=SANDBOX_TIMEOUT_DELAY,
            ),
            dict(os.environ),
        )

    def start(self) -> None:
        self.process.start()
        harness.wait_for(
            lambda: harness.http_get(f"{self.base_url}/_sandbox/mode", timeout=1)[0] == 200,
            timeout=30,
            what=f"sandbox {self.code} to start",
            alive=self.process.check_alive,
        )

    def stop(self) -> None:
        self.process.stop(timeout=10)

    def mode(self, mode: str = "ok", **options: Any) -> None:
        response = requests.post(f"{self.base_url}/_sandbox/mode", json={"mode": mode, **options}, timeout=5)
        response.raise_for_status()

    def reset(self) -> None:
        # The sandbox answers once no callback is in flight any more (it waits up to 6 s).
        requests.post(f"{self.base_url}/_sandbox/reset", timeout=15).raise_for_status()

    def payments(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.base_url}/_sandbox/payments", timeout=5)
        response.raise_for_status()
        return response.json()["payments"]

    def refunds(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.base_url}/_sandbox/payments", timeout=5)
        response.raise_for_status()
        return response.json()["refunds"]


def purge_broker() -> None:
    from django.conf import settings

    from paygate.celery import app

    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        for sub in ("queue", "processed"):
            folder = settings.BROKER_DIR / sub
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
    else:
        with app.connection_for_write() as conn:
            for queue in {*app.amqp.queues, "webhooks"}:
                # A queue never declared yet: on RabbitMQ an error that closes its channel.
                with conn.channel() as channel, contextlib.suppress(Exception):
                    channel.queue_purge(queue)


def celery_worker(env: dict[str, str], *, name: str = "worker", concurrency: int = 2) -> Process:
    return Process(name, harness.worker_argv(hostname=f"{name}-{os.getpid()}@%h", concurrency=concurrency), env)


def celery_beat(env: dict[str, str], *, name: str = "beat") -> Process:
    return Process(name, harness.beat_argv(pidfile=LOG_DIR / f"{name}.pid"), env)


def worker_env(live_server_url: str) -> dict[str, str]:
    from django.conf import settings
    from django.db import connection

    env = dict(os.environ)
    env["PAYGATE_PUBLIC_URL"] = live_server_url
    env["PYTHONUNBUFFERED"] = "1"
    name = str(connection.settings_dict["NAME"])
    if settings.USING_SQLITE:
        env["PAYGATE_SQLITE_PATH"] = name
    else:
        url = os.environ["DATABASE_URL"]
        env["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + name
    env["PAYGATE_BROKER_DIR"] = str(settings.BROKER_DIR)
    # Tests wait for transactions; the production backoff would make them wait long.
    env.setdefault("PAYGATE_RETRY_BACKOFF_BASE_SECONDS", "0.5")
    env.setdefault("PAYGATE_RETRY_BACKOFF_MAX_SECONDS", "1")
    env.setdefault("PAYGATE_BREAKER_FAILURE_THRESHOLD", "3")
    # Checks at most every second (half of this), so health changes within a few seconds.
    env.setdefault("PAYGATE_HEALTH_CHECK_INTERVAL_SECONDS", "2")
    # The sandboxes are plain http on loopback (see conftest.py's loopback_gateways_allowed).
    env.setdefault("PAYGATE_GATEWAY_ALLOWED_HOSTS", "127.0.0.1,localhost")
    return env


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`manage.py` in a process of its own, which sees none of the suite's secrets or DEBUG: only `env`'s."""
    secret_names = {"SECRET_KEY", "FERNET_KEYS", "PAYGATE_FINGERPRINT_KEYS", "PAYGATE_VAULT_KEYS", "DEBUG"}
    clean = {k: v for k, v in os.environ.items() if k not in secret_names}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
