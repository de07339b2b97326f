"""Property-based API tests with schemathesis, driven by the project's own OpenAPI schema.

The schema is loaded in-process from `/api/schema/` through the WSGI application, and
every operation under `/api/v1` (the callbacks endpoint included: unsigned calls answer
401, which it documents) is exercised with generated requests — the schema's examples,
the coverage phase's boundary and negative cases (missing API key, wrong types,
unexpected methods, ...) and bounded, derandomized fuzzing — and must:

- never answer 5xx;
- answer only status codes the schema documents, with a documented content type and a
  body that matches the documented response schema (XML bodies: well-formed XML);
- answer every error in the one shape `{"error": {"code", "message", "fields"}}` (or its
  XML rendering `<error><code/><message/><fields/></error>`), CONTRACT §1 Errors;
- never show client B anything of client A's: every generated request carries B's key,
  while A owns transactions in every status, both types, four countries and three
  gateways, and B's generated transaction ids include A's.

No worker and no broker are needed: each test runs inside the test's database
transaction, so the after-commit publish of a created transaction never fires, and
nothing reaches a worker that other tests may have started.
`test_create_answers_202_when_the_broker_is_unreachable` commits for real and publishes
to a broker address where nothing listens.

"""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element
from xml.etree.ElementTree import ParseError as XMLParseError

import pytest
import schemathesis
from defusedxml.ElementTree import fromstring as xml_fromstring
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateways.demo import DEMO_COUNTRIES, DEMO_GATEWAYS
from paygate.wsgi import application
from testing.factories import DEPOSIT as VALID_DEPOSIT

# Cases per operation in the fuzzing phase; the examples and coverage phases add their
# own deterministic cases (about 30-200 per operation). The module runs in ~40 s.
MAX_EXAMPLES = 25

SCHEMA = schemathesis.openapi.from_wsgi("/api/schema/", application).include(path_regex=r"^/api/v1/")

DEPOSITS = "POST /api/v1/deposits"
WITHDRAWALS = "POST /api/v1/withdrawals"
TRANSACTION = "GET /api/v1/transactions/{transaction_id}"
TRANSACTIONS = "GET /api/v1/transactions"
GATEWAYS = "GET /api/v1/gateways"
CALLBACK = "POST /api/v1/callbacks/{gateway_code}"
ALL_OPERATIONS = (DEPOSITS, WITHDRAWALS, TRANSACTION, TRANSACTIONS, GATEWAYS, CALLBACK)

GATEWAY_CODES = [demo.code for demo in DEMO_GATEWAYS]
COUNTRIES = [(code, currency) for code, _name, currency, _routes in DEMO_COUNTRIES]


def operation(label: str) -> Any:
    method, path = label.split(" ", 1)
    return SCHEMA[path][method]


# --- Checks beyond schemathesis' own ---------------------------------------------------------


def _media_type(response: schemathesis.Response) -> str:
    return (response.headers.get("content-type") or [""])[0].split(";")[0].strip().lower()


def _is_xml(response: schemathesis.Response) -> bool:
    return _media_type(response) in ("application/xml", "text/xml")


def _parse_xml(response: schemathesis.Response) -> Element | None:
    try:
        return xml_fromstring(response.content)
    except XMLParseError:
        return None


@schemathesis.check
def xml_well_formed(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """An XML answer is at least XML (schemathesis validates only JSON bodies against the schema)."""
    if not _is_xml(response):
        return None
    assert _parse_xml(response) is not None, f"malformed XML response: {response.content[:300]!r}"
    return True


@schemathesis.check
def error_body_shape(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """CONTRACT §1 Errors: every error body is `{"error": {"code", "message", "fields"}}`."""
    if response.status_code < 400:
        return None
    if _is_xml(response):
        root = _parse_xml(response)
        if root is None:
            return None  # xml_well_formed reports it
        assert root.tag == "error", f"XML error root is <{root.tag}>, not <error>"
        children = sorted(child.tag for child in root)
        assert children == ["code", "fields", "message"], f"XML error children: {children}"
        assert (root.findtext("code") or "").strip(), "empty error code"
        return True
    assert _media_type(response) == "application/json", f"error answered as {_media_type(response)!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict) and set(body) == {"error"}, f"error body: {body!r}"
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message", "fields"}, f"error: {error!r}"
    assert isinstance(error["code"], str) and error["code"], f"error.code: {error['code']!r}"
    assert isinstance(error["message"], str), f"error.message: {error['message']!r}"
    assert isinstance(error["fields"], dict), f"error.fields: {error['fields']!r}"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    xml_well_formed,
    error_body_shape,
]


def validate(case: schemathesis.Case, response: schemathesis.Response) -> None:
    case.validate_response(response, checks=CHECKS)


# --- Fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def in_process_requests() -> Iterator[None]:
    """As Django's test client does: a request must not close the test's database connection.

    The WSGI handler sends `request_finished`, whose `close_old_connections` closes a
    connection that is inside a transaction, such as the test's own.
    """
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@dataclass
class Clients:
    key_a: str
    key_b: str
    a_ids: list[str]
    b_ids: list[str]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Api-Key {key}"}


# Client A's transactions: (operation, country, currency, status, gateway, failure_reason).
A_TRANSACTIONS = [
    (DEPOSITS, "DE", "EUR", "pending", None, None),
    (DEPOSITS, "US", "USD", "processing", "globex", None),
    (WITHDRAWALS, "GB", "GBP", "completed", "soapbank", None),
    (WITHDRAWALS, "BR", "BRL", "failed", "soapbank", "declined"),
    (DEPOSITS, "DE", "EUR", "completed", "acmepay", None),
]

# Ids the generated path parameters draw from (besides random strings): set per test.
_PROBE_TRANSACTION_IDS: list[str] = []


def create(label: str, key: str, *, country: str, currency: str, n: int) -> str:
    body = {**VALID_DEPOSIT, "country": country, "currency": currency, "customer_id": f"cus_{n}"}
    case = operation(label).Case(body=body, media_type="application/json", headers={"Idempotency-Key": f"seed-{n}"})
    response = case.call(headers=auth(key))
    validate(case, response)
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.fixture
def clients(db: Any, in_process_requests: None) -> Iterator[Clients]:
    """The demo routes; client A owns a transaction in every status, client B two pending ones."""
    from gateways.models import Gateway
    from gateways.services import demo_seed
    from payments.models import Transaction
    from payments.services import api_key_create

    demo_seed()
    key_a = api_key_create(client_name="schemathesis-a")[1]
    key_b = api_key_create(client_name="schemathesis-b")[1]
    a_ids = []
    for n, (label, country, currency, status, gateway, reason) in enumerate(A_TRANSACTIONS):
        txn_id = create(label, key_a, country=country, currency=currency, n=n)
        Transaction.objects.filter(pk=txn_id).update(
            status=status,
            gateway=Gateway.objects.get(code=gateway) if gateway else None,
            gateway_reference=f"ref-{n}" if gateway else "",
            failure_reason=reason,
        )
        a_ids.append(txn_id)
    b_ids = [
        create(DEPOSITS, key_b, country="DE", currency="EUR", n=100),
        create(WITHDRAWALS, key_b, country="US", currency="USD", n=101),
    ]
    _PROBE_TRANSACTION_IDS[:] = a_ids + b_ids
    yield Clients(key_a=key_a, key_b=key_b, a_ids=a_ids, b_ids=b_ids)
    _PROBE_TRANSACTION_IDS.clear()


def assert_nothing_of(response: schemathesis.Response, foreign_ids: list[str]) -> None:
    text = response.content.decode("utf-8", errors="replace")
    leaked = [txn_id for txn_id in foreign_ids if txn_id in text]
    assert not leaked, f"client B was shown client A's transactions {leaked}: {text[:500]}"


# --- Generated tests --------------------------------------------------------------------------


@SCHEMA.hook
def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: dict[str, Any]) -> Any:
    """Besides random strings: real gateway codes (so unsigned callbacks reach the signature
    check and answer 401) and real transaction ids, A's among them."""
    label = context.operation.label if context.operation is not None else ""
    if label == CALLBACK:
        return st.sampled_from([path_parameters] + [{"gateway_code": code} for code in GATEWAY_CODES])
    if label == TRANSACTION and _PROBE_TRANSACTION_IDS:
        return st.sampled_from([path_parameters] + [{"transaction_id": i} for i in _PROBE_TRANSACTION_IDS])
    return st.just(path_parameters)


@pytest.mark.django_db
@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_answers_as_documented(case: schemathesis.Case, clients: Clients) -> None:
    response = case.call(headers=auth(clients.key_b))
    validate(case, response)
    assert_nothing_of(response, clients.a_ids)


# --- Client isolation, exhaustively -------------------------------------------------------------


@pytest.mark.django_db
def test_client_b_never_sees_client_a(clients: Clients) -> None:
    detail = operation(TRANSACTION)
    for txn_id in clients.a_ids:
        for accept in ("application/json", "application/xml"):
            case = detail.Case(path_parameters={"transaction_id": txn_id}, headers={"Accept": accept})
            response = case.call(headers=auth(clients.key_b))
            validate(case, response)
            assert response.status_code == 404, response.text
            assert_nothing_of(response, clients.a_ids)
        # The same request with A's key finds it: B's 404 is isolation, not a broken lookup.
        case = detail.Case(path_parameters={"transaction_id": txn_id})
        response = case.call(headers=auth(clients.key_a))
        validate(case, response)
        assert response.status_code == 200, response.text

    listing = operation(TRANSACTIONS)
    queries: list[dict[str, Any]] = [{}, {"page_size": 200}, {"page_size": 1, "page": 2}]
    for _label, country, _currency, status, gateway, _reason in A_TRANSACTIONS:
        kind = "deposit" if _label == DEPOSITS else "withdrawal"
        exact = {"status": status, "type": kind, "country": country, **({"gateway": gateway} if gateway else {})}
        queries.append(exact)
        queries.extend({name: value} for name, value in exact.items())
    queries.extend(
        {"status": s, "type": t}
        for s, t in itertools.product(("pending", "processing", "completed", "failed"), ("deposit", "withdrawal"))
    )
    queries.extend({"gateway": code} for code in GATEWAY_CODES)
    queries.extend({"country": code} for code, _currency in COUNTRIES)
    seen_by_a: set[str] = set()
    for query in queries:
        for accept in ("application/json", "application/xml"):
            case = listing.Case(query=query, headers={"Accept": accept})
            response = case.call(headers=auth(clients.key_b))
            validate(case, response)
            assert response.status_code == 200, (query, response.text)
            assert_nothing_of(response, clients.a_ids)
        case = listing.Case(query={**{k: v for k, v in query.items() if k != "page"}, "page_size": 200})
        response = case.call(headers=auth(clients.key_a))
        validate(case, response)
        assert response.status_code == 200, (query, response.text)
        seen_by_a.update(item["id"] for item in response.json()["results"])
    # Every one of A's transactions matched some of these filters for A, never for B.
    assert seen_by_a == set(clients.a_ids)


# --- Publishing after commit --------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_create_answers_202_when_the_broker_is_unreachable(
    in_process_requests: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publish after commit goes to a broker address where nothing listens: still 202."""
    from kombu import Connection

    from gateways.services import demo_seed
    from payments import tasks
    from payments.models import Transaction
    from payments.services import api_key_create

    demo_seed()
    key = api_key_create(client_name="schemathesis-broker-down")[1]
    nowhere = f"redis://127.0.0.1:{_closed_port()}/0"
    publish = tasks.process_transaction.apply_async
    attempts: list[str] = []

    def publish_to_nowhere(*args: Any, **kwargs: Any) -> Any:
        attempts.append(nowhere)
        with Connection(nowhere) as connection:
            return publish(*args, connection=connection, **kwargs)

    monkeypatch.setattr(tasks.process_transaction, "apply_async", publish_to_nowhere)
    for label in (DEPOSITS, WITHDRAWALS):
        case = operation(label).Case(body=VALID_DEPOSIT, media_type="application/json")
        response = case.call(headers=auth(key))
        validate(case, response)
        assert response.status_code == 202, response.text
    assert len(attempts) == 2, "the publish after commit did not run"
    # Stored as pending with a due check: the recovery sweep republishes them.
    assert Transaction.objects.filter(status="pending", next_check_at__isnull=False).count() == 2
