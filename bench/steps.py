"""CPU per step of one transaction, in one process: where the web's and the worker's milliseconds go.

    DATABASE_URL=postgres://… CELERY_BROKER_URL=redis://… .venv/bin/python -m pytest bench/steps.py -q -s

(Not collected by `make test`: the file name does not match `test_*.py`.) It runs on the test
database and the suite's sandbox gateways (callbacks off, so that nothing else touches a
transaction), with warm process caches, and measures each step of N deposits with
`time.process_time` (this process's CPU, no profiler):

- `create`: the merchant's POST through the whole middleware and DRF stack (authentication, rate
  limit, idempotency, validation, encryption, the transaction and its event, the publish);
- `process`: the worker's task body (`transaction_process`): lock, routing, the attempt before the
  call, the call through the adapter (its client side), the outcome and its event;
- `callback`: the gateway's signed POST, stored, answered and applied.

Each step's SQL statements are counted (BEGIN/COMMIT included) so that the client-side cost per
statement can be set against PostgreSQL's (`make bench`'s `statements` and `postgres` figures).
With `BENCH_STEPS_PROFILE=1` each step is also profiled (cProfile on CPU time) and its top
functions written to bench/.work/steps-<step>.txt.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.localcache import begin_unit, end_unit
from payments.models import Attempt
from payments.processing import transaction_process
from testing.steps import completed_callback, deposit

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

N = int(os.environ.get("BENCH_STEPS_N", "300"))
WARM_UP = 30
OUT = Path(__file__).resolve().parent / ".work"


def _as_task(function: Callable[..., Any], **kwargs: Any) -> Any:
    """As the worker runs a task: one unit of work for the process caches (one read of their generations)."""
    begin_unit()
    try:
        return function(**kwargs)
    finally:
        end_unit()


def _measure(name: str, calls: list[Callable[[], Any]]) -> dict[str, float]:
    """CPU ms per call and statements per call; optionally a CPU profile of the calls."""
    profile = cProfile.Profile(time.process_time) if os.environ.get("BENCH_STEPS_PROFILE") else None
    with CaptureQueriesContext(connection) as queries:
        started = time.process_time()
        if profile is not None:
            profile.enable()
        for call in calls:
            call()
        if profile is not None:
            profile.disable()
        cpu = time.process_time() - started
    if profile is not None:
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(80)
        OUT.mkdir(exist_ok=True)
        (OUT / f"steps-{name}.txt").write_text(text.getvalue())
    return {"cpu_ms": round(cpu * 1000 / len(calls), 3), "statements": round(len(queries) / len(calls), 2)}


def test_cpu_per_step(api: Any, client: Any, quiet_sandboxes: Any) -> None:
    for index in range(WARM_UP):
        txn_id = deposit(api, key=f"warm-{index}")
        transaction_process(transaction_id=txn_id)
        attempt = Attempt.objects.select_related("gateway").get(transaction_id=txn_id)
        body, signature = completed_callback(attempt, event_id=f"evt_warm_{index}")
        client.post(
            f"/api/v1/callbacks/{attempt.gateway.code}",
            data=body,
            content_type="application/json",
            HTTP_X_SIGNATURE=signature,
        )

    ids: list[str] = []
    results = {"create": _measure("create", [lambda i=i: ids.append(deposit(api, key=f"m-{i}")) for i in range(N)])}
    results["process"] = _measure("process", [lambda t=t: _as_task(transaction_process, transaction_id=t) for t in ids])
    attempts = [Attempt.objects.select_related("gateway").get(transaction_id=t) for t in ids]
    assert all(a.outcome == "accepted" for a in attempts)
    posts = []
    for index, attempt in enumerate(attempts):
        body, signature = completed_callback(attempt, event_id=f"evt_m_{index}")
        posts.append((f"/api/v1/callbacks/{attempt.gateway.code}", body, signature))
    results["callback"] = _measure(
        "callback",
        [
            lambda p=p: client.post(p[0], data=p[1], content_type="application/json", HTTP_X_SIGNATURE=p[2])
            for p in posts
        ],
    )
    total = {key: round(sum(step[key] for step in results.values()), 3) for key in ("cpu_ms", "statements")}
    results["total"] = total
    OUT.mkdir(exist_ok=True)
    (OUT / "steps.json").write_text(json.dumps(results, indent=2))
    print()
    print("| step | CPU ms (this process) | SQL statements |")
    print("| --- | ---: | ---: |")
    for step, figures in results.items():
        print(f"| {step} | {figures['cpu_ms']:.2f} | {figures['statements']:.1f} |")
