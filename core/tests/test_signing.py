"""Known-answer tests: Paygate's verifier and the sandbox's signer, each against one fixed vector.

The expected hex was computed outside Python, with
`printf '1767225600.{"event_id":"evt_1","status":"completed"}' | openssl dgst -sha256 -hmac whsec_known_answer`,
so a bug shared by both implementations (or by the test) cannot make it pass.
"""

from __future__ import annotations

import pytest

from core.signing import SignatureError, compute_signature, verify_signature
from sandbox.signing import sign_callback

SECRET = "whsec_known_answer"
TIMESTAMP = 1767225600
BODY = b'{"event_id":"evt_1","status":"completed"}'
EXPECTED = "5b9c981dfce1e80bfe9d18d8fdd2fa21b4c7f85562bb53ebbafc6c214bbb71d1"


def test_paygate_computes_the_known_answer() -> None:
    assert compute_signature(secret=SECRET, timestamp=TIMESTAMP, body=BODY) == EXPECTED


def test_the_sandbox_signs_the_known_answer() -> None:
    assert sign_callback(secret=SECRET, body=BODY, timestamp=TIMESTAMP) == f"t={TIMESTAMP},v1={EXPECTED}"


def test_paygate_accepts_the_known_answer_and_nothing_else() -> None:
    header = f"t={TIMESTAMP},v1={EXPECTED}"
    now = TIMESTAMP + 10

    assert verify_signature(header=header, body=BODY, secrets=[SECRET], tolerance=300, now=now) == (0, TIMESTAMP)
    for tampered_header, body in [(header, BODY + b" "), (f"t={TIMESTAMP + 1},v1={EXPECTED}", BODY)]:
        with pytest.raises(SignatureError):
            verify_signature(header=tampered_header, body=body, secrets=[SECRET], tolerance=300, now=now)
