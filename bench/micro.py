"""Per-call cost of API-key verification and of Fernet encryption of payment details.

- API key (`payments/auth.py`, djangorestframework-api-key): the SHA-512 hash check alone,
  and the whole `ApiKeyAuthentication.authenticate` (the key row SELECT included).
- Fernet (`core/fields.py` on django-fernet-fields): encrypting and decrypting a
  transaction's `payment_details` through the model field, as a save and a load do; and
  loading one `Gateway` row, whose three encrypted credentials are decrypted on every load
  (compared with the same row loaded without them).

Each figure is the mean time per call in the best of `--repeat` rounds (`min_us`, the least
disturbed by whatever else runs on the machine), with the median round beside it.
Run by `bench/run.py` with `--attach`; alone, it prepares the bench database itself.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script: bench/ must not shadow anything, the project must import
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import stack


def per_call_us(fn: Callable[[], Any], *, number: int, repeat: int) -> dict[str, float]:
    for _ in range(min(number, 200)):  # warm-up: lazy imports, cached properties, the first connection
        fn()
    rounds = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - started) / number * 1e6)
    return {"median_us": round(statistics.median(rounds), 2), "min_us": round(min(rounds), 2), "calls": number * repeat}


def measure_all(*, number: int, repeat: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.db import connection
    from django.test import RequestFactory
    from rest_framework.request import Request

    from gateways.models import Gateway
    from payments.auth import ApiKeyAuthentication
    from payments.models import ClientAPIKey, Transaction
    from payments.services import api_key_create

    _, key = api_key_create(client_name="bench-micro")
    api_key = ClientAPIKey.objects.get_from_key(key)
    generator = ClientAPIKey.objects.key_generator
    auth = ApiKeyAuthentication()
    request = Request(RequestFactory().post("/api/v1/deposits", HTTP_AUTHORIZATION=f"Api-Key {key}"))

    field = Transaction._meta.get_field("payment_details")
    details = {"iban": "DE89370400440532013000", "holder_name": "Jane Roe"}
    prepared = field.get_db_prep_save(details, connection)
    token = bytes(getattr(prepared, "obj", prepared))  # psycopg wraps it in Binary; the database returns bytes
    gateway_pk = Gateway.objects.values_list("pk", flat=True).first()
    plain_fields = [
        f.name
        for f in Gateway._meta.concrete_fields
        if f.name not in {"api_key", "webhook_secret", "previous_webhook_secret"}
    ]

    results = {
        "api_key_hash_verify": per_call_us(
            lambda: generator.verify(key, api_key.hashed_key), number=number, repeat=repeat
        ),
        "api_key_authenticate_with_db": per_call_us(
            lambda: auth.authenticate(request), number=max(number // 10, 50), repeat=repeat
        ),
        "fernet_encrypt_payment_details": per_call_us(
            lambda: field.get_db_prep_save(details, connection), number=number, repeat=repeat
        ),
        "fernet_decrypt_payment_details": per_call_us(
            lambda: field.from_db_value(token, None, connection), number=number, repeat=repeat
        ),
        "gateway_row_load_with_credentials": per_call_us(
            lambda: Gateway.objects.get(pk=gateway_pk), number=max(number // 10, 50), repeat=repeat
        ),
        "gateway_row_load_without_credentials": per_call_us(
            lambda: Gateway.objects.only(*plain_fields).get(pk=gateway_pk), number=max(number // 10, 50), repeat=repeat
        ),
    }
    with_creds = results["gateway_row_load_with_credentials"]["min_us"]
    without = results["gateway_row_load_without_credentials"]["min_us"]
    return {
        "results": results,
        "derived": {
            "gateway_credentials_decrypt_us_per_row": round(with_creds - without, 2),
            "api_key_db_part_us": round(
                results["api_key_authenticate_with_db"]["min_us"] - results["api_key_hash_verify"]["min_us"], 2
            ),
        },
        "notes": [
            "API keys are hashed with SHA-512 (Sha512ApiKeyHasher): one hash per candidate key with the prefix.",
            "FERNET_KEYS holds one key here; with several, encryption uses the first and decryption tries them "
            "in order (MultiFernet).",
            "Loading a Gateway row decrypts api_key, webhook_secret and previous_webhook_secret, wanted or not.",
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--attach", action="store_true", help="use the environment of a running bench")
    parser.add_argument("--number", type=int, default=2000, help="calls per round (DB-backed ones: a tenth)")
    parser.add_argument("--repeat", type=int, default=7, help="rounds")
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    if args.attach:
        result = measure_all(number=args.number, repeat=args.repeat)
    else:
        data_dir = stack.WORK_DIR / "micro-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = stack.bench_env(data_dir, stack.Secrets.generate())
        os.environ.clear()
        os.environ.update(env)
        with stack.Stack(env=env, log_dir=stack.WORK_DIR / "logs" / "micro") as bench_stack:
            bench_stack.prepare()
            result = measure_all(number=args.number, repeat=args.repeat)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
