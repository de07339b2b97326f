"""Reads shared by the API, the dashboard and /metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from payments.models import Transaction
from payments.selectors import transaction_oldest_waiting_ages


def made_ago(make_transaction: Any, seconds: float, **fields: Any) -> Transaction:
    txn = make_transaction(**fields)
    Transaction.objects.filter(pk=txn.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))
    return txn


def test_the_oldest_waiting_transaction_per_status(make_transaction: Any) -> None:
    now = timezone.now()
    assert transaction_oldest_waiting_ages(now=now) == {"pending": None, "requires_action": None, "processing": None}
    made_ago(make_transaction, 600, status="completed")  # final: not waiting
    made_ago(make_transaction, 300)
    made_ago(make_transaction, 120)
    made_ago(make_transaction, 90, status="requires_action")
    made_ago(make_transaction, 60, status="processing")
    ages = transaction_oldest_waiting_ages(now=timezone.now())
    pending, processing, waiting = ages["pending"], ages["processing"], ages["requires_action"]
    assert pending is not None and 300 <= pending < 330
    assert processing is not None and 60 <= processing < 90
    assert waiting is not None and 90 <= waiting < 120


def test_the_dashboard_and_metrics_read_the_same_ages(make_transaction: Any, rf: Any) -> None:
    from django.contrib.auth import get_user_model

    from ops.dashboard import dashboard_view
    from ops.metrics import StateCollector

    made_ago(make_transaction, 400)
    request = rf.get("/admin/dashboard/")
    request.user = get_user_model().objects.create_superuser("ops", "", "pw-for-tests-only")
    context = dashboard_view(request).context_data
    assert 400 <= context["oldest_pending_s"] < 430 and context["oldest_processing_s"] is None
    gauges = {
        sample.labels["status"]: sample.value
        for family in StateCollector().collect()
        if family.name == "paygate_oldest_transaction_age_seconds"
        for sample in family.samples
    }
    assert 400 <= gauges["pending"] < 430 and gauges["processing"] == 0.0
