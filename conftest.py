"""Fixtures and hooks of the whole suite; what they build on lives in the `testing` package.

Integration tests run a Celery worker in its own process and the three sandbox gateways
as their own processes over HTTP on loopback; callbacks reach this process through
pytest-django's live server (testing/stack.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import harness
from harness import free_port
from testing import factories
from testing.stack import (
    TEST_READ_TIMEOUT,
    WEBHOOK_RETRY_SCHEDULE,
    WEBHOOK_TIMEOUT_SECONDS,
    Process,
    Sandbox,
    celery_worker,
    purge_broker,
    services_configured,
    worker_env,
)


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
        purge_broker()
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
def demo(db: Any) -> None:
    """The demo gateways, countries and routes (gateways/demo.py), not pointed at any sandbox."""
    from gateways.services import demo_seed

    demo_seed()


@pytest.fixture
def api_key(db: Any) -> str:
    return factories.api_key("merchant-a")


@pytest.fixture
def api(api_key: str) -> Any:
    return factories.api_client(api_key)


@pytest.fixture
def other_api(db: Any) -> Any:
    return factories.api_client(factories.api_key("merchant-b"))


@pytest.fixture
def make_transaction(demo: None) -> Callable[..., Any]:
    """Deposits of one client and customer in DE, written straight to the database (demo routes seeded)."""
    return factories.transaction_maker()
