"""SQL statements of a gateway's callback, received and applied, in steady state.

The web process stores the event (one INSERT) and answers; then, with the answer out, applies it
to the transaction. The Django test client runs that apply as the response closes, so both are
counted together here; the bound is today's count.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from callbacks.models import CallbackEvent
from payments.models import Transaction
from testing.steps import completed_callback, processed

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The INSERT that stores it; then BEGIN, the lock (with the current attempt), one write (the row and
# its event; on SQLite the attempt's read and the two writes apart), the event's result, COMMIT.
RECEIVE_AND_APPLY_STATEMENTS = 6 if connection.vendor == "postgresql" else 8


def test_a_callback_costs_one_insert_to_store_and_a_locked_step_to_apply(
    api: Any, client: Any, quiet_sandboxes: Any, django_assert_max_num_queries: Any
) -> None:
    warm_up = processed(api, key="warm-up")
    body, signature = completed_callback(warm_up, event_id="evt_warm_up")
    path = f"/api/v1/callbacks/{warm_up.gateway.code}"
    assert client.post(path, data=body, content_type="application/json", HTTP_X_SIGNATURE=signature).status_code == 200
    attempt = processed(api, key="measured")
    body, signature = completed_callback(attempt, event_id="evt_measured")

    with django_assert_max_num_queries(RECEIVE_AND_APPLY_STATEMENTS):
        response = client.post(path, data=body, content_type="application/json", HTTP_X_SIGNATURE=signature)

    assert response.status_code == 200
    assert CallbackEvent.objects.get(event_id="evt_measured").result == "applied"
    assert Transaction.objects.get(attempts=attempt).status == "completed"
