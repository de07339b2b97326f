"""Paygate's settings with the floor app, a bare middleware stack and the floor's own URLs.

The floor's web server and worker run with these, with the same granian and Celery flags as
Paygate's (bin/web, harness.worker_argv), on a database of their own (BENCH_DB_NAME + `_floor`).
"""

import os

from paygate.settings import *  # noqa: F401,F403
from paygate.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.floor"]
ROOT_URLCONF = "bench.floor_urls"
# What any Django API behind a proxy keeps; Paygate's request ids, CSP, sessions, CSRF, admin
# authentication and lockout are its own costs, not the floor's.
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware"]

BENCH_FLOOR_GATEWAY_URL = os.environ.get("BENCH_FLOOR_GATEWAY_URL", "http://127.0.0.1:8214")
BENCH_FLOOR_GATEWAY_KEY = os.environ.get("BENCH_FLOOR_GATEWAY_KEY", "demo-floorpay-api-key")
BENCH_FLOOR_CALLBACK_URL = os.environ.get("BENCH_FLOOR_CALLBACK_URL", "http://127.0.0.1:8201/bench/floor/callbacks")
# The floor serves no admin (its URLs are above): the admin's and django-axes' middleware checks do not apply.
SILENCED_SYSTEM_CHECKS = [
    *globals().get("SILENCED_SYSTEM_CHECKS", []),
    "admin.E408",
    "admin.E409",
    "admin.E410",
    "axes.W002",
]
