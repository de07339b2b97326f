"""Shared fixtures: the real stack for integration tests.

Integration tests run a Celery worker in its own process and the three sandbox gateways
as their own processes over HTTP on loopback; callbacks reach this process through
pytest-django's live server. The database is the test database of whatever backend is
configured (SQLite file by default, PostgreSQL with DATABASE_URL), and the broker is the
configured one (the filesystem transport by default, Redis or RabbitMQ with CELERY_BROKER_URL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import harness
from harness import free_port

ROOT = Path(__file__).resolve().parent
LOG_DIR = ROOT / ".data" / "test-logs"

# Gateways in tests give up quickly, so that timeouts do not slow the suite down.
TEST_READ_TIMEOUT = 1.5
SANDBOX_TIMEOUT_DELAY = 4.0


def pytest_sessionstart(session: pytest.Session) -> None:
    """A SQLite test database deleted without its -wal/-shm files leaves them to corrupt the next one."""
    from django.conf import settings

    # Metric files of earlier runs would add to this one's. This process's own stay: Django's
    # start-up has already opened them (a counter without labels writes its file on import),
    # and a file unlinked under it would take every later sample out of /metrics.
    for stale in Path(settings.PROMETHEUS_METRICS_ROOT).glob("*/*.db"):
        if not stale.stem.endswith(f"_{os.getpid()}"):
            stale.unlink()
    if settings.USING_SQLITE:
        name = Path(settings.DATABASES["default"]["TEST"]["NAME"])
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)
    _flush_survives_deadlocks()


def _flush_survives_deadlocks() -> None:
    """A transactional test's teardown TRUNCATEs every table while the stack's worker may still be
    finishing a task the test published (a look-up, a retry): PostgreSQL may pick the TRUNCATE as a
    deadlock's victim. The worker's transaction then goes through, and the TRUNCATE is simply tried
    again; anything else still fails the test."""
    from django.db import OperationalError
    from django.db.backends.base.operations import BaseDatabaseOperations

    flush = BaseDatabaseOperations.execute_sql_flush
    if getattr(flush, "retries_deadlocks", False):
        return

    def execute_sql_flush(self: BaseDatabaseOperations, sql_list: list[str]) -> None:
        for attempt in range(5):
            try:
                return flush(self, sql_list)
            except OperationalError as exc:
                if "deadlock detected" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))  # a back-off before trying again, not a wait for a state

    execute_sql_flush.retries_deadlocks = True  # type: ignore[attr-defined]
    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]


def services_configured() -> bool:
    """PostgreSQL, and Redis as the broker, or RabbitMQ as the broker with Redis as the cache."""
    broker = os.environ.get("CELERY_BROKER_URL") or ""
    cache = os.environ.get("PAYGATE_CACHE_URL") or broker
    return bool(os.environ.get("DATABASE_URL")) and broker.startswith(("redis", "amqp")) and cache.startswith("redis")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`services` tests need PostgreSQL and Redis; CI sets PAYGATE_REQUIRE_SERVICES=1 so they never skip."""
    if services_configured():
        return
    if os.environ.get("PAYGATE_REQUIRE_SERVICES") == "1":
        raise pytest.UsageError(
            "PAYGATE_REQUIRE_SERVICES=1 but DATABASE_URL / CELERY_BROKER_URL (redis, or amqp with "
            "PAYGATE_CACHE_URL=redis://...) are not set"
        )
    skip = pytest.mark.skip(reason="needs PostgreSQL and Redis (set DATABASE_URL and CELERY_BROKER_URL)")
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """With PAYGATE_REQUIRE_SERVICES=1 a `services` test that skips itself is a failure, not a skip."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and "services" in item.keywords and os.environ.get("PAYGATE_REQUIRE_SERVICES") == "1":
        report.outcome = "failed"
        report.longrepr = f"a test needing PostgreSQL and Redis was skipped: {report.longrepr}"


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
    logging to .data/test-logs/<name>.log."""

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


@pytest.fixture(autouse=True)
def fresh_local_caches() -> Iterator[None]:
    """Each test starts with empty process-local caches: a rolled-back test never bumps their generation."""
    from core.localcache import clear_all

    clear_all()
    yield
    clear_all()


@pytest.fixture(autouse=True)
def loopback_gateways_allowed() -> Iterator[None]:
    """The sandboxes are plain http on loopback; pytest-django runs with DEBUG off, which refuses
    such gateways unless allow-listed (as the compose demo does for its containers)."""
    from django.test import override_settings

    with override_settings(PAYGATE_GATEWAY_ALLOWED_HOSTS=["127.0.0.1", "localhost"]):
        yield


@pytest.fixture(autouse=True)
def failure_limits_out_of_reach() -> Iterator[None]:
    """Every test client comes from 127.0.0.1 and the suite sends wrong keys and signatures on purpose;
    counted per minute across tests, they would trip the production limits. Tests of the limits set them."""
    from django.test import override_settings

    with override_settings(PAYGATE_AUTH_FAILURE_LIMIT="100000/minute", PAYGATE_CALLBACK_FAILURE_LIMIT="100000/minute"):
        yield


@pytest.fixture(scope="session")
def sandboxes() -> Iterator[dict[str, Sandbox]]:
    from gateways.demo import DEMO_GATEWAYS

    boxes = {demo.code: Sandbox(demo.code, demo.data_format, free_port()) for demo in DEMO_GATEWAYS}
    try:
        for box in boxes.values():
            box.start()
        yield boxes
    finally:
        for box in boxes.values():
            box.stop()


def _purge_broker() -> None:
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
    # The sandboxes are plain http on loopback (see loopback_gateways_allowed).
    env.setdefault("PAYGATE_GATEWAY_ALLOWED_HOSTS", "127.0.0.1,localhost")
    return env


WEBHOOK_RETRY_SCHEDULE = "0.5,1"
WEBHOOK_TIMEOUT_SECONDS = "2"


@pytest.fixture(scope="session")
def webhook_worker(django_db_setup: Any, django_db_blocker: Any, live_server: Any) -> Iterator[Process]:
    """The webhook dispatcher, as in production; short retries and timeout for the tests."""
    with django_db_blocker.unblock():
        env = worker_env(live_server.url)
    env["PAYGATE_WEBHOOK_ALLOW_PRIVATE"] = "True"
    env["PAYGATE_WEBHOOK_RETRY_SCHEDULE"] = WEBHOOK_RETRY_SCHEDULE
    env["PAYGATE_WEBHOOK_TIMEOUT_SECONDS"] = WEBHOOK_TIMEOUT_SECONDS
    worker = Process(
        "webhook-worker",
        harness.dispatcher_argv(),
        env,
    )
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def receiver(settings: Any) -> Iterator[harness.Receiver]:
    """A real HTTP webhook receiver on loopback, which the API accepts in this test (as with DEBUG on)."""
    settings.PAYGATE_WEBHOOK_ALLOW_PRIVATE = True
    box = harness.Receiver().start()
    yield box
    box.stop()


@pytest.fixture(scope="session")
def worker_process(django_db_setup: Any, django_db_blocker: Any, live_server: Any) -> Iterator[Process]:
    with django_db_blocker.unblock():
        _purge_broker()
        worker = celery_worker(worker_env(live_server.url))
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def stack(
    transactional_db: Any, sandboxes: dict[str, Sandbox], worker_process: Process, live_server: Any, settings: Any
) -> Iterator[dict[str, Sandbox]]:
    """The demo configuration, pointed at the test sandboxes, with a live worker and fresh sandboxes.

    At the end the sandboxes are reset again, which waits out callbacks still on their way: one
    arriving while the test database is flushed would fail the flush and leak rows into the next test.
    """
    from gateways.breaker import breaker_close
    from gateways.models import Gateway
    from gateways.services import demo_seed

    settings.PAYGATE_PUBLIC_URL = live_server.url
    settings.PAYGATE_BREAKER_FAILURE_THRESHOLD = 3
    for box in sandboxes.values():
        box.reset()
    demo_seed(ports={code: box.port for code, box in sandboxes.items()})
    Gateway.objects.update(read_timeout=TEST_READ_TIMEOUT, connect_timeout=1.0)
    for gateway_id in Gateway.objects.values_list("pk", flat=True):
        breaker_close(gateway_id)
    yield sandboxes
    for box in sandboxes.values():
        box.reset()


@pytest.fixture
def quiet_sandboxes(db: Any, sandboxes: dict[str, Sandbox]) -> Iterator[dict[str, Sandbox]]:
    """The demo routes on the test sandboxes, which send no callbacks meanwhile (no worker either):
    a test drives a transaction's steps in this process."""
    from gateways.services import demo_seed

    demo_seed(ports={code: box.port for code, box in sandboxes.items()})
    for box in sandboxes.values():
        box.reset()
        box.mode("ok", callback="none")
    yield sandboxes
    for box in sandboxes.values():
        box.reset()


@pytest.fixture
def api_key(db: Any) -> str:
    from payments.services import api_key_create

    return api_key_create(client_name="merchant-a")[1]


@pytest.fixture
def api(api_key: str) -> Any:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    return client


@pytest.fixture
def other_api(db: Any) -> Any:
    from rest_framework.test import APIClient

    from payments.services import api_key_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_create(client_name='merchant-b')[1]}")
    return client


@pytest.fixture
def make_transaction(db: Any) -> Callable[..., Any]:
    """Deposits of one client and customer in DE, written straight to the database (demo routes seeded)."""
    from decimal import Decimal

    from gateways.services import demo_seed
    from payments.models import Customer, Transaction
    from payments.services import api_key_create

    demo_seed()
    client, _ = api_key_create(client_name="unit")
    customer = Customer.objects.create(client=client, reference="c1", country_id="DE")

    def make(**fields: Any) -> Transaction:
        defaults = {"type": "deposit", "amount": Decimal("5"), "currency": "EUR", "country_id": "DE"}
        return Transaction.objects.create(client=client, customer=customer, **{**defaults, **fields})

    return make
