"""SQL statements (and Fernet operations) per transaction, on the API path and in the worker.

In-process, with Django's own test tooling against the bench database:
`CaptureQueriesContext` around each step of one transaction's life —

- web  `api_create`       POST /api/v1/deposits|withdrawals through `rest_framework.test.APIClient`
- work `worker_process`   `payments.processing.transaction_process` (a real HTTP call to a live sandbox)
- web  `callback_receive` POST /api/v1/callbacks/<code>, a signed callback in the gateway's format, up to
                          its answer
- web  `callback_apply`   what the web process does once that answer has gone out (`ApplyAfterAnswer`):
                          `callbacks.services.callback_apply_after_answer`, counted on its own

The sandboxes are switched to `callback: none` for the measurement and the callback is
built and signed here, exactly as the sandbox would send it, so that no other process
touches these transactions meanwhile. CELERY_TASK_ALWAYS_EAGER stays False: the publishes
after commit go to the bench broker (Redis db 14) and are not run here.

Scenarios: the demo (3 gateways, 7 routes); plus 10 gateways that must not matter
(4 inactive gateways routed in the demo countries, 3 active ones with inactive routes
there, 3 active ones routed only in other countries); plus 5 active gateways routed in the
demo countries for another currency (they pass the SQL filter and are dropped in Python).

Run by `bench/run.py` with `--attach` (its stack is up); alone, it prepares the bench
database and starts the sandboxes itself.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script: bench/ must not shadow anything, the project must import
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

import argparse
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from bench import stack

STEPS = ("api_create", "worker_process", "callback_receive", "callback_apply")
WEB_STEPS = ("api_create", "callback_receive", "callback_apply")
WORKER_STEPS = ("worker_process",)
DEMO = (("DE", "EUR"), ("GB", "GBP"), ("US", "USD"), ("BR", "BRL"))
EXTRA_PREFIX = "bench-extra-"


def _kind(sql: str) -> str:
    word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    return (
        word
        if word in {"SELECT", "INSERT", "UPDATE", "DELETE", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "BEGIN"}
        else "OTHER"
    )


class FernetCounter:
    """Counts Fernet encryptions and decryptions made through django-fernet-fields while active."""

    def __init__(self) -> None:
        self.encrypt = 0
        self.decrypt = 0

    @contextlib.contextmanager
    def active(self) -> Iterator[FernetCounter]:
        from fernet_fields.fields import EncryptedField

        original_save, original_load = EncryptedField.get_db_prep_save, EncryptedField.from_db_value
        counter = self

        def get_db_prep_save(field: Any, value: Any, connection: Any) -> Any:
            if value is not None:
                counter.encrypt += 1
            return original_save(field, value, connection)

        def from_db_value(field: Any, value: Any, *args: Any) -> Any:
            if value is not None:
                counter.decrypt += 1
            return original_load(field, value, *args)

        EncryptedField.get_db_prep_save = get_db_prep_save  # type: ignore[method-assign]
        EncryptedField.from_db_value = from_db_value  # type: ignore[method-assign]
        try:
            yield self
        finally:
            EncryptedField.get_db_prep_save = original_save  # type: ignore[method-assign]
            EncryptedField.from_db_value = original_load  # type: ignore[method-assign]


@dataclass
class Measured:
    queries: int
    by_kind: dict[str, int]
    fernet_encrypt: int
    fernet_decrypt: int
    sql: list[str] = field(repr=False)

    def as_dict(self, *, with_sql: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "queries": self.queries,
            "by_kind": self.by_kind,
            "fernet_encrypt": self.fernet_encrypt,
            "fernet_decrypt": self.fernet_decrypt,
        }
        if with_sql:
            out["sql"] = self.sql
        return out


def measure(fn: Callable[[], Any]) -> tuple[Any, Measured]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counter = FernetCounter()
    with CaptureQueriesContext(connection) as ctx, counter.active():
        result = fn()
    sql = [query["sql"] for query in ctx.captured_queries]
    return result, Measured(
        queries=len(sql),
        by_kind=dict(Counter(_kind(s) for s in sql)),
        fernet_encrypt=counter.encrypt,
        fernet_decrypt=counter.decrypt,
        sql=[s if len(s) <= 400 else s[:400] + " …" for s in sql],
    )


def _callback_body(data_format: str, *, event_id: str, payment_id: str, reference: str) -> tuple[bytes, str]:
    """A `completed` notification exactly as the sandbox sends it (sandbox/gateway.py)."""
    if data_format == "json":
        body = {
            "event_id": event_id,
            "payment_id": payment_id,
            "reference": reference,
            "status": "completed",
            "reason": None,
        }
        return json.dumps(body).encode(), "application/json"
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\n<PaymentNotification>'
        f"<EventId>{event_id}</EventId><PaymentId>{payment_id}</PaymentId><Reference>{reference}</Reference>"
        "<Status>Completed</Status><Reason/></PaymentNotification>"
    )
    return xml.encode(), "application/xml"


_CALLBACK_CLIENT: Any = None


def _callback_client() -> Any:
    """One client without credentials for every callback: like a gunicorn worker, it loads the middleware
    once (a new test client per request would re-run WhiteNoise's start-up file scan each time)."""
    global _CALLBACK_CLIENT
    if _CALLBACK_CLIENT is None:
        from rest_framework.test import APIClient

        _CALLBACK_CLIENT = APIClient()
    return _CALLBACK_CLIENT


# Runs one named step of a transaction: measures it (here), profiles it (bench/profile.py), or just runs it.
Runner = Callable[[str, Callable[[], Any]], Any]


def just_run(step: str, fn: Callable[[], Any]) -> Any:
    return fn()


def one_transaction(api: Any, *, country: str, currency: str, kind: str, tag: str, run: Runner = just_run) -> str:
    """One transaction through its four steps, each through `run`. Ends `completed` or raises; returns its id."""
    from callbacks import apis as callback_apis
    from callbacks.services import callback_apply_after_answer
    from callbacks.signing import signature_header
    from payments.models import Attempt, Transaction
    from payments.processing import transaction_process

    body = {
        "customer_id": f"cus_q_{country}",
        "country": country,
        "amount": "25.00",
        "currency": currency,
        "payment_details": {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"},
        "metadata": {"order": tag},
    }
    path = "/api/v1/deposits" if kind == "deposit" else "/api/v1/withdrawals"
    response = run(
        "api_create",
        lambda: api.post(path, data=json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY=tag),
    )
    if response.status_code != 202:
        raise stack.BenchError(f"create answered {response.status_code}: {response.content[:300]!r}")
    txn_id = response.json()["id"]
    retry = run("worker_process", lambda: transaction_process(transaction_id=txn_id))
    attempt = Attempt.objects.select_related("gateway").filter(transaction_id=txn_id).order_by("-number").first()
    if retry is not None or attempt is None or attempt.outcome != "accepted":
        raise stack.BenchError(f"processing of {txn_id} did not reach an accepted attempt (retry={retry})")
    gateway = attempt.gateway
    event_id = f"evt_bench_{uuid.uuid4().hex}"
    cb_body, content_type = _callback_body(
        gateway.data_format, event_id=event_id, payment_id=attempt.gateway_payment_id, reference=str(attempt.pk)
    )
    signature = signature_header(secret=gateway.webhook_secret, body=cb_body)
    callback_client = _callback_client()
    # The test client closes the response inside post(), which would count the apply with the
    # receive: the apply the response would run is held back here and run (and counted) after.
    held: list[Any] = []
    with mock.patch.object(callback_apis, "callback_apply_after_answer", lambda *, event: held.append(event)):
        cb_response = run(
            "callback_receive",
            lambda: callback_client.post(
                f"/api/v1/callbacks/{gateway.code}", data=cb_body, content_type=content_type, HTTP_X_SIGNATURE=signature
            ),
        )
    if cb_response.status_code != 200 or not held:
        raise stack.BenchError(f"callback answered {cb_response.status_code}: {cb_response.content[:300]!r}")
    run("callback_apply", lambda: callback_apply_after_answer(event=held[0]))
    status = Transaction.objects.values_list("status", flat=True).get(pk=txn_id)
    if status != "completed":
        raise stack.BenchError(f"transaction {txn_id} ended {status}, expected completed")
    return txn_id


def measured_transaction(api: Any, *, country: str, currency: str, kind: str, tag: str) -> dict[str, Measured]:
    """One transaction with each step's statements and Fernet operations counted."""
    measured: dict[str, Measured] = {}

    def run(step: str, fn: Callable[[], Any]) -> Any:
        result, measured[step] = measure(fn)
        return result

    one_transaction(api, country=country, currency=currency, kind=kind, tag=tag, run=run)
    return measured


def _add_extra_gateways() -> dict[str, int]:
    """10 gateways that must not change a demo transaction's cost."""
    from gateways.models import Country, Gateway, GatewayRoute

    countries = {code: Country.objects.get(code=code) for code, _ in DEMO}
    for code, name in (("FR", "France"), ("IT", "Italy"), ("ES", "Spain")):
        countries[code], _ = Country.objects.get_or_create(code=code, defaults={"name": name, "currency": "EUR"})
    routes = 0
    for index in range(10):
        gateway = Gateway.objects.create(
            code=f"{EXTRA_PREFIX}{index}",
            name=f"Extra {index}",
            data_format="json" if index % 2 else "xml",
            base_url="http://127.0.0.1:9/",
            api_key=f"extra-{index}-key",
            webhook_secret=f"extra-{index}-secret",
            is_active=index >= 4,
        )
        if index < 4:  # inactive gateway, active routes in every demo country
            targets, active = [code for code, _ in DEMO], True
        elif index < 7:  # active gateway, inactive routes in the demo countries
            targets, active = [code for code, _ in DEMO][:3], False
        else:  # active gateway, active route in another country only
            targets, active = [("FR", "IT", "ES")[index - 7]], True
        for country in targets:
            GatewayRoute.objects.create(
                country=countries[country], gateway=gateway, priority=10 + index, is_active=active
            )
            routes += 1
    return {"gateways": 10, "routes": routes}


def _add_other_currency_routes() -> dict[str, int]:
    """5 active gateways routed in every demo country, but for CHF only: kept by SQL, dropped in Python."""
    from gateways.models import Country, Gateway, GatewayRoute

    routes = 0
    for index in range(10, 15):
        gateway = Gateway.objects.create(
            code=f"{EXTRA_PREFIX}{index}",
            name=f"Extra {index}",
            data_format="json",
            base_url="http://127.0.0.1:9/",
            api_key=f"extra-{index}-key",
            webhook_secret=f"extra-{index}-secret",
        )
        for code, _ in DEMO:
            GatewayRoute.objects.create(
                country=Country.objects.get(code=code), gateway=gateway, priority=20 + index, currencies=["CHF"]
            )
            routes += 1
    return {"gateways": 5, "routes": routes}


def _remove_extras() -> None:
    from gateways.models import Country, Gateway, GatewayRoute

    GatewayRoute.objects.filter(gateway__code__startswith=EXTRA_PREFIX).delete()
    Gateway.objects.filter(code__startswith=EXTRA_PREFIX).delete()
    Country.objects.filter(code__in=["FR", "IT", "ES"], routes__isnull=True).delete()


def _counts() -> dict[str, int]:
    from gateways.models import Gateway, GatewayRoute

    return {
        "gateways": Gateway.objects.count(),
        "active_gateways": Gateway.objects.filter(is_active=True).count(),
        "routes": GatewayRoute.objects.count(),
        "active_routes": GatewayRoute.objects.filter(is_active=True).count(),
    }


def _scenario(api: Any, label: str, run_tag: str) -> dict[str, Any]:
    # Warm-up (not counted): the routes and gateway rows cached per process were dropped by the
    # scenario's edits; each is read again once, then served from memory until the next edit.
    for kind in ("deposit", "withdrawal"):
        for country, currency in DEMO:
            one_transaction(
                api, country=country, currency=currency, kind=kind, tag=f"{run_tag}-{label}-warm-{kind}-{country}"
            )
    samples: list[dict[str, Any]] = []
    for kind in ("deposit", "withdrawal"):
        for country, currency in DEMO:
            measured = measured_transaction(
                api, country=country, currency=currency, kind=kind, tag=f"{run_tag}-{label}-{kind}-{country}"
            )
            samples.append({"country": country, "type": kind, "steps": measured})
    steps: dict[str, Any] = {}
    for step in STEPS:
        values = [sample["steps"][step] for sample in samples]
        steps[step] = {
            "queries_min": min(m.queries for m in values),
            "queries_max": max(m.queries for m in values),
            "fernet_decrypt_min": min(m.fernet_decrypt for m in values),
            "fernet_decrypt_max": max(m.fernet_decrypt for m in values),
            "fernet_encrypt_max": max(m.fernet_encrypt for m in values),
            "sample": values[0].as_dict(),
            "per_sample": {f"{s['type']}/{s['country']}": s["steps"][step].queries for s in samples},
        }
    web = [sum(s["steps"][step].queries for step in WEB_STEPS) for s in samples]
    worker = [sum(s["steps"][step].queries for step in WORKER_STEPS) for s in samples]
    return {
        "config": _counts(),
        "steps": steps,
        "per_transaction": {
            "web_min": min(web),
            "web_max": max(web),
            "worker_min": min(worker),
            "worker_max": max(worker),
            "total_max": max(w + k for w, k in zip(web, worker, strict=True)),
        },
        "_sql": {step: samples[0]["steps"][step].sql for step in STEPS},
    }


def set_callbacks(value: str) -> None:
    """Switch every sandbox's callbacks: `none` while this process delivers them itself."""
    for code in stack.SANDBOXES:
        stack.http_post_json(f"{stack.sandbox_url(code)}/_sandbox/mode", {"callback": value})


def api_client(name: str) -> Any:
    """Django set up (bench environment), and an APIClient holding a new API key of client `name`."""
    import django

    django.setup()
    from django.conf import settings
    from rest_framework.test import APIClient

    from payments.services import api_key_create

    if settings.CELERY_TASK_ALWAYS_EAGER:
        raise stack.BenchError("CELERY_TASK_ALWAYS_EAGER must be False for this measurement")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_create(client_name=name)[1]}")
    return api


def measure_all() -> dict[str, Any]:
    api = api_client("bench-queries")
    run_tag = f"q{int(time.time())}"
    set_callbacks("none")
    try:
        scenarios = {"demo": _scenario(api, "demo", run_tag)}
        try:
            added = _add_extra_gateways()
            scenarios["demo+10_irrelevant_gateways"] = {**_scenario(api, "extra10", run_tag), "added": added}
            added_currency = _add_other_currency_routes()
            scenarios["demo+10+5_other_currency_gateways"] = {
                **_scenario(api, "extra15", run_tag),
                "added": {"on top": added_currency},
            }
        finally:
            _remove_extras()
    finally:
        set_callbacks("completed")
    sql = scenarios["demo"].pop("_sql")
    for scenario in scenarios.values():
        scenario.pop("_sql", None)
    return {
        "scenarios": scenarios,
        "sql_of_one_demo_transaction": sql,
        "notes": [
            "Counts are statements Django sends (CaptureQueriesContext), COMMIT and SAVEPOINTs included.",
            "Not captured: with CONN_HEALTH_CHECKS=True Django runs one health-check `SELECT 1` on a reused "
            "connection at the first query of each request / task (Celery's fix-up resets it per task).",
            "Not counted here: the API key's last_used_at UPDATE, written at most once a minute per key.",
            "Steady state: each scenario is warmed up first. Routes, gateway rows and API keys are cached per "
            "process (one Redis GET per read checks the shared generation); after an edit each process reads "
            "them again once: one SELECT per (country, currency, type) and one per gateway.",
            "worker_process counts the processing task; each callback costs callback_receive and callback_apply, "
            "both in the web process (the apply runs once the gateway has its answer).",
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--attach",
        action="store_true",
        help="use the environment and sandboxes of a running bench (as bench/run.py does)",
    )
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    if args.attach:
        result = measure_all()
    else:
        data_dir = stack.WORK_DIR / "queries-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = stack.bench_env(data_dir, stack.Secrets.generate())
        os.environ.clear()
        os.environ.update(env)
        with stack.Stack(env=env, log_dir=stack.WORK_DIR / "logs" / "queries") as bench_stack:
            bench_stack.prepare()
            bench_stack.start_sandboxes()
            result = measure_all()
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
