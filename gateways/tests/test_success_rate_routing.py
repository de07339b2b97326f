"""The success-rate strategy in the stack: settings, scores from real outcomes, explanations, and traffic moving."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.urls import reverse

import testing.api
from gateways import selectors
from gateways.models import Country, Gateway
from gateways.routing import Strategy
from gateways.scores import ScoreKey, Window, score_record, scores_forget, scores_read
from gateways.selectors import country_routing, route_ranking
from gateways.services import country_routing_set
from payments.models import Attempt, Transaction
from payments.processing import transaction_process
from payments.settlement import transaction_settle_from_callback
from testing.factories import deposit_body
from testing.stack import Sandbox, wait_for

DEPOSIT = deposit_body(customer_id="cus_sr", metadata=None)
FINAL = {"completed", "failed"}
WINDOW = Window(size=200, seconds=600)


def key(code: str, transaction_type: str = "deposit") -> ScoreKey:
    return ScoreKey(
        gateway_id=Gateway.objects.get(code=code).pk, country="DE", currency="EUR", transaction_type=transaction_type
    )


@pytest.fixture
def fresh_scores(demo: None) -> Iterator[None]:
    """DE's demo routes with empty windows (gateway ids repeat across tests on some databases)."""
    keys = [key(code, kind) for code in ("acmepay", "soapbank") for kind in ("deposit", "withdrawal")]
    scores_forget(keys)
    yield
    scores_forget(keys)


create = functools.partial(testing.api.create, body=DEPOSIT)


def seed_outcomes(code: str, *, successes: int, failures: int) -> None:
    for index in range(successes + failures):
        score_record(key(code), window=WINDOW, success=index < successes, latency_ms=40.0)


# --- settings -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_set_routing_changes_a_countrys_strategy_for_its_next_transaction(capsys: Any, demo: None) -> None:
    assert country_routing("DE").strategy == Strategy.PRIORITY  # read and kept by this process
    call_command(
        "set_routing", "DE", "--strategy", "success_rate", "--exploration", "0.1", "--latency-threshold-ms", "300"
    )
    assert "DE: strategy success_rate, exploration 0.1, latency threshold 300 ms" in capsys.readouterr().out
    settings = country_routing("DE")
    assert (settings.strategy, settings.exploration, settings.latency_threshold_ms) == ("success_rate", 0.1, 300)
    # Options not given are left alone; 0 removes the latency threshold.
    call_command("set_routing", "de", "--strategy", "priority", "--latency-threshold-ms", "0")
    germany = Country.objects.get(code="DE")
    assert (germany.routing_strategy, germany.routing_exploration, germany.routing_latency_threshold_ms) == (
        "priority",
        0.1,
        None,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["XX", "--strategy", "priority"], "Unknown country", id="unknown-country"),
        pytest.param(["DE", "--strategy", "success_rate", "--exploration", "0.9"], "routing_exploration", id="explore"),
        pytest.param(["DE", "--strategy", "success_rate", "--exploration", "-0.1"], "routing_exploration", id="neg"),
        pytest.param(["DE", "--strategy", "priority", "--latency-threshold-ms", "-5"], "latency", id="latency"),
        pytest.param(["DE", "--strategy", "priority", "--window", "50", "--min-samples", "60"], "window", id="min>win"),
        pytest.param(["DE", "--strategy", "priority", "--default-score", "1.5"], "routing_default_score", id="score"),
    ],
)
def test_set_routing_refuses_what_the_admin_refuses(args: list[str], message: str, demo: None) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("set_routing", *args)
    germany = Country.objects.get(code="DE")
    assert (germany.routing_strategy, germany.routing_exploration) == ("priority", 0.05)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes",
    [
        {"routing_strategy": "fastest"},
        {"routing_exploration": 0.51},
        {"routing_exploration": -0.01},
        {"routing_latency_threshold_ms": 0},
        {"routing_window": 5},
        {"routing_window_seconds": 1},
        {"routing_min_samples": 0},
        {"routing_window": 100, "routing_min_samples": 101},
        {"routing_default_score": 1.01},
    ],
    ids=lambda changes: ",".join(f"{k}={v}" for k, v in changes.items()),
)
def test_the_database_refuses_settings_out_of_range(changes: dict[str, Any], demo: None) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Country.objects.filter(code="DE").update(**changes)


@pytest.mark.django_db
def test_the_country_page_edits_the_routing(client: Any, demo: None) -> None:
    from django.contrib.auth import get_user_model

    from testing.factories import route_form, routing_fields

    client.force_login(get_user_model().objects.create_superuser("ops", "", "pw-for-tests-only"))
    germany = Country.objects.get(code="DE")
    url = reverse("admin:gateways_country_change", args=[germany.pk])
    page = client.get(url).content.decode()
    assert "Routing" in page and "Current scores" in page and "acmepay (priority 1)" in page
    refused = client.post(url, {**route_form(germany), **routing_fields(germany, routing_min_samples="500")})
    assert refused.status_code == 200 and "At most the window" in refused.content.decode()
    changes = routing_fields(germany, routing_strategy="success_rate", routing_latency_threshold_ms="250")
    assert client.post(url, {**route_form(germany), **changes}).status_code == 302
    germany.refresh_from_db()
    assert (germany.routing_strategy, germany.routing_latency_threshold_ms) == ("success_rate", 250)
    assert country_routing("DE").strategy == "success_rate"


# --- ordering from real scores, the decision kept, outcomes scored ----------------------------------------


@pytest.mark.django_db
def test_a_priority_country_reads_no_scores(fresh_scores: None) -> None:
    with mock.patch.object(selectors, "scores_read") as read:
        ranking = route_ranking(country_code="DE", currency="EUR", transaction_type="deposit")
    assert [r.gateway_code for r in ranking.order] == ["acmepay", "soapbank"] and not read.called


@pytest.mark.integration
def test_processing_follows_the_scores_keeps_the_decision_and_scores_the_outcomes(
    api: Any, quiet_sandboxes: dict[str, Sandbox], fresh_scores: None, django_capture_on_commit_callbacks: Any
) -> None:
    country_routing_set(country_code="DE", strategy="success_rate", exploration=0.0)
    seed_outcomes("acmepay", successes=60, failures=40)
    seed_outcomes("soapbank", successes=95, failures=5)

    txn = create(api)
    with django_capture_on_commit_callbacks(execute=True):
        assert transaction_process(transaction_id=txn["id"]) is None
    attempt = Attempt.objects.get(transaction_id=txn["id"])
    assert attempt.gateway.code == "soapbank" and attempt.outcome == "accepted"
    assert attempt.routing is not None and attempt.routing.pop("decided_in_us") >= 0
    assert attempt.routing == {
        "strategy": "success_rate",
        "chosen": "soapbank",
        "explored": False,
        "routes": [
            {
                "gateway": "soapbank",
                "priority": 2,
                "score": 0.95,
                "measured": True,
                "awaiting": False,
                "samples": 100,
                "p95_ms": 48.8,
                "slow": False,
            },
            {
                "gateway": "acmepay",
                "priority": 1,
                "score": 0.6,
                "measured": True,
                "awaiting": False,
                "samples": 100,
                "p95_ms": 48.8,
                "slow": False,
            },
        ],
        "skipped": [],
    }
    # The accept: its latency counts now, its outcome once the payment ends.
    after_accept = scores_read([key("soapbank")])[key("soapbank")]
    assert (after_accept.samples, after_accept.latency_samples) == (100, 101)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        transaction_settle_from_callback(
            reference=str(attempt.pk), gateway_id=attempt.gateway_id, status="failed", payment_id=""
        )
    after_callback = scores_read([key("soapbank")])[key("soapbank")]
    assert (after_callback.samples, after_callback.successes) == (101, 95)
    # A decline is a failure at once.
    quiet_sandboxes["soapbank"].mode("decline")
    declined = create(api)
    with django_capture_on_commit_callbacks(execute=True):
        transaction_process(transaction_id=declined["id"])
    assert Transaction.objects.get(pk=declined["id"]).failure_reason == "declined"
    after_decline = scores_read([key("soapbank")])[key("soapbank")]
    assert (after_decline.samples, after_decline.successes) == (102, 95)


@pytest.mark.integration
def test_a_fault_counts_once_however_it_ends(
    api: Any, quiet_sandboxes: dict[str, Sandbox], fresh_scores: None, django_capture_on_commit_callbacks: Any
) -> None:
    # acmepay answers 500 without recording the payment: outcome unknown, then "never received", then soapbank.
    quiet_sandboxes["acmepay"].mode("error")
    txn = create(api)
    with django_capture_on_commit_callbacks(execute=True):
        assert transaction_process(transaction_id=txn["id"]) is None
    assert [a.gateway.code for a in Attempt.objects.filter(transaction_id=txn["id"]).order_by("number")] == [
        "acmepay",
        "soapbank",
    ]
    read = scores_read([key("acmepay"), key("soapbank")])
    assert (read[key("acmepay")].samples, read[key("acmepay")].successes) == (1, 0)
    assert (read[key("soapbank")].samples, read[key("soapbank")].latency_samples) == (0, 1)


@pytest.mark.django_db
def test_the_api_shows_strategies_and_the_admin_shows_scores_and_decisions(
    api: Any, fresh_scores: None, client: Any, make_transaction: Any
) -> None:
    from django.contrib.auth import get_user_model

    country_routing_set(country_code="DE", strategy="success_rate")
    seed_outcomes("acmepay", successes=27, failures=3)
    seed_outcomes("soapbank", successes=2, failures=0)
    routes = {(g["code"], r["country"]): r for g in api.get("/api/v1/gateways").json()["gateways"] for r in g["routes"]}
    acmepay = routes[("acmepay", "DE")]
    assert acmepay["strategy"] == "success_rate"
    # Merchants see each route's strategy, never scores or sample counts: those are made of every
    # merchant's traffic. Operators see them in the admin (below).
    for route in routes.values():
        assert set(route) == {
            "country",
            "priority",
            "currencies",
            "transaction_types",
            "payment_methods",
            "active",
            "strategy",
        }
    assert not re.search(
        r"\"(scores?|samples|success_rate|measured|p95_latency_ms)\":", api.get("/api/v1/gateways").content.decode()
    )
    assert routes[("soapbank", "GB")]["strategy"] == "priority"

    client.force_login(get_user_model().objects.create_superuser("ops", "", "pw-for-tests-only"))
    dashboard = client.get("/admin/dashboard/").content.decode()
    assert "EUR deposit: 90.0% of 30" in dashboard and "(success rate)" in dashboard
    txn = make_transaction()
    ranking = route_ranking(country_code="DE", currency="EUR", transaction_type="deposit", draw=lambda: 0.5)
    Attempt.objects.create(
        transaction=txn,
        number=1,
        gateway_id=ranking.order[0].gateway_id,
        routing=ranking.record(chosen=ranking.order[0]),
    )
    page = client.get(reverse("admin:payments_transaction_change", args=[txn.pk])).content.decode()
    assert "Why this gateway" in page
    assert "acmepay (priority 1, score 0.900 of 30 outcomes, p95 49 ms)" in page
    assert "soapbank (priority 2, score 1.000, default: too few outcomes" in page


# --- the real stack: a gateway starts declining, traffic moves -----------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_raised_decline_rate_moves_a_success_rate_countrys_traffic_to_the_other_gateway(
    api: Any, stack: dict[str, Sandbox]
) -> None:
    keys = [key(code) for code in ("acmepay", "soapbank")]
    scores_forget(keys)
    # A small window, so that a few transactions tell; no exploration, so that each choice is the scores'.
    country_routing_set(country_code="DE", strategy="success_rate", exploration=0.0, window=20, min_samples=5)

    def one() -> dict[str, Any]:
        done = wait_for(
            lambda: (b := api.get(f"/api/v1/transactions/{txn_id}").json())["status"] in FINAL and b,
            timeout=30,
            message="the deposit to be final",
        )
        return done

    gateways = []
    for _ in range(6):
        txn_id = create(api)["id"]
        gateways.append(one()["attempts"][-1]["gateway"])
    assert gateways == ["acmepay"] * 6  # both untried, then acmepay does well: priority order

    stack["acmepay"].mode("ok", decline_rate=1.0)
    after = []
    for _ in range(8):
        txn_id = create(api)["id"]
        done = one()
        after.append((done["attempts"][-1]["gateway"], done["status"]))
    # A couple of declines bring acmepay's score below what soapbank may still do; then soapbank takes it.
    moved_at = next(i for i, (gateway, _) in enumerate(after) if gateway == "soapbank")
    assert 1 <= moved_at <= 3, after
    assert all(gateway == "soapbank" and status == "completed" for gateway, status in after[moved_at:]), after
    decision = Attempt.objects.filter(transaction__country_id="DE").latest("created_at").routing
    assert decision["strategy"] == "success_rate" and decision["chosen"] == "soapbank"
    assert [r["gateway"] for r in decision["routes"]] == ["soapbank", "acmepay"]
    read = scores_read(keys)
    assert read[keys[0]].samples == 6 + moved_at and read[keys[0]].successes == 6
