"""The pay page's token: bound to one transaction, expiring, keyed (CONTRACT §11)."""

from __future__ import annotations

import time
import uuid

from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from core.paytoken import pay_token_make, pay_token_valid

LATER = int(time.time()) + 3600


def test_a_token_opens_its_own_transaction() -> None:
    txn = str(uuid.uuid4())
    assert pay_token_valid(pay_token_make(transaction_id=txn, expires_at=LATER), transaction_id=txn)


def test_the_same_transaction_and_expiry_make_the_same_token() -> None:
    txn = str(uuid.uuid4())
    assert pay_token_make(transaction_id=txn, expires_at=LATER) == pay_token_make(transaction_id=txn, expires_at=LATER)


def test_an_expired_token_is_refused() -> None:
    txn = str(uuid.uuid4())
    token = pay_token_make(transaction_id=txn, expires_at=1_000)
    assert not pay_token_valid(token, transaction_id=txn)
    assert pay_token_valid(token, transaction_id=txn, now=999)
    assert not pay_token_valid(token, transaction_id=txn, now=1_000)


def test_a_token_made_with_another_key_is_refused() -> None:
    txn = str(uuid.uuid4())
    with override_settings(SECRET_KEY="another-key-" + "x" * 50):
        foreign = pay_token_make(transaction_id=txn, expires_at=LATER)
    assert not pay_token_valid(foreign, transaction_id=txn)


def test_a_token_extended_by_hand_is_refused() -> None:
    txn = str(uuid.uuid4())
    token = pay_token_make(transaction_id=txn, expires_at=1_000)
    longer = pay_token_make(transaction_id=txn, expires_at=LATER)
    # The signature of one payload on the other: never valid.
    forged = token.rsplit(":", 1)[0] + ":" + longer.rsplit(":", 1)[1]
    assert not pay_token_valid(forged, transaction_id=txn)


@given(a=st.uuids(), b=st.uuids())
@settings(max_examples=200, deadline=None)
def test_a_token_for_one_transaction_never_opens_another(a: uuid.UUID, b: uuid.UUID) -> None:
    token = pay_token_make(transaction_id=str(a), expires_at=LATER)
    assert pay_token_valid(token, transaction_id=str(b)) == (a == b)


@given(garbage=st.text(max_size=600))
@settings(max_examples=300, deadline=None)
def test_any_text_is_refused_without_raising(garbage: str) -> None:
    assert not pay_token_valid(garbage, transaction_id=str(uuid.uuid4()))
