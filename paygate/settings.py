"""Paygate settings: every value that varies between machines is read here, from the environment.

Defaults are safe for development and announce themselves with a warning, so a
deployment that forgot a variable is loud rather than silently insecure.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import overload

import dj_database_url
from csp.constants import NONCE

from paygate import secrets

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("PAYGATE_DATA_DIR", BASE_DIR / ".data"))


def _warn_default(name: str) -> None:
    sys.stderr.write(f"WARNING: {name} is not set; using an insecure development default.\n")


@overload
def _env(name: str, default: str, *, warn: bool = False) -> str: ...
@overload
def _env(name: str, default: None = None, *, warn: bool = False) -> str | None: ...
def _env(name: str, default: str | None = None, *, warn: bool = False) -> str | None:
    value = os.environ.get(name)
    if value is None:
        file_path = os.environ.get(f"{name}_FILE")
        if file_path:
            value = Path(file_path).read_text().strip()
    if value is None or value == "":
        if warn:
            _warn_default(name)
        return default
    return value


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    return default if value is None else int(value)


def _env_float(name: str, default: float) -> float:
    value = _env(name)
    return default if value is None else float(value)


def _env_list(name: str, default: list[str]) -> list[str]:
    value = _env(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# Off unless asked for: a deployment that forgets it must not serve Django's debug page.
# `make run`, the test suite and the documented commands set DEBUG=True explicitly.
DEBUG = _env_bool("DEBUG", False)

# Development-only defaults (paygate/secrets.py), refused when DEBUG is off.
SECRET_KEY = _env("SECRET_KEY", secrets.DEV_SECRET_KEY, warn=True)
# Newest first: values are encrypted with the first key and decrypted with any of them.
FERNET_KEYS = _env_list("FERNET_KEYS", [])
if not FERNET_KEYS:
    _warn_default("FERNET_KEYS")
    FERNET_KEYS = [secrets.DEV_FERNET_KEY]
# Keys of the idempotency fingerprints (HMAC-SHA256), newest first: new fingerprints use the
# first, replays are verified against all of them. Separate from SECRET_KEY and FERNET_KEYS.
PAYGATE_FINGERPRINT_KEYS = _env_list("PAYGATE_FINGERPRINT_KEYS", [])
if not PAYGATE_FINGERPRINT_KEYS:
    _warn_default("PAYGATE_FINGERPRINT_KEYS")
    PAYGATE_FINGERPRINT_KEYS = [secrets.DEV_FINGERPRINT_KEY]
# Keys of the saved payment methods (vault), newest first, like FERNET_KEYS but apart from them.
PAYGATE_VAULT_KEYS = _env_list("PAYGATE_VAULT_KEYS", [])
if not PAYGATE_VAULT_KEYS:
    _warn_default("PAYGATE_VAULT_KEYS")
    PAYGATE_VAULT_KEYS = [secrets.DEV_VAULT_KEY]


def _check_formats() -> None:
    """Fail at start, not on every request, when a setting cannot be parsed."""
    import ipaddress
    from decimal import Decimal, InvalidOperation

    from django.core.exceptions import ImproperlyConfigured

    for name in ("PAYGATE_RATE_LIMIT", "PAYGATE_AUTH_FAILURE_LIMIT", "PAYGATE_CALLBACK_FAILURE_LIMIT"):
        rate = globals()[name]
        if rate and not re.fullmatch(r"\d+/(second|minute|hour)s?", rate.strip()):
            raise ImproperlyConfigured(f"{name} must be N/second, N/minute or N/hour, not {rate!r}")
    for proxy in PAYGATE_TRUSTED_PROXIES:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"PAYGATE_TRUSTED_PROXIES must list IP addresses or networks, not {proxy!r}"
            ) from None
    if not 1 <= AXES_FAILURE_LIMIT <= 10:
        raise ImproperlyConfigured("PAYGATE_ADMIN_LOGIN_FAILURE_LIMIT must be between 1 and 10 (PCI DSS 8.3.4).")
    if AXES_COOLOFF_TIME < timedelta(minutes=30):
        raise ImproperlyConfigured("PAYGATE_ADMIN_LOCKOUT_MINUTES must be at least 30 (PCI DSS 8.3.4).")
    try:
        if not Decimal(PAYGATE_MAX_AMOUNT).is_finite() or Decimal(PAYGATE_MAX_AMOUNT) <= 0:
            raise InvalidOperation
    except InvalidOperation:
        raise ImproperlyConfigured(
            f"PAYGATE_MAX_AMOUNT must be a positive number, not {PAYGATE_MAX_AMOUNT!r}"
        ) from None
    if not 0 < PAYGATE_ROUTING_CLIENT_SHARE <= 1:
        raise ImproperlyConfigured(
            f"PAYGATE_ROUTING_CLIENT_SHARE must be in (0, 1], not {PAYGATE_ROUTING_CLIENT_SHARE}"
        )
    if not all(item.isdigit() and 0 < int(item) < 65536 for item in PAYGATE_WEBHOOK_ALLOWED_PORTS):
        raise ImproperlyConfigured(
            f"PAYGATE_WEBHOOK_ALLOWED_PORTS must be comma-separated ports, not {PAYGATE_WEBHOOK_ALLOWED_PORTS!r}"
        )
    if PAYGATE_PAYMENT_DETAILS_RETENTION_DAYS < 0:
        raise ImproperlyConfigured(
            f"PAYGATE_PAYMENT_DETAILS_RETENTION_DAYS must be 0 or more, not {PAYGATE_PAYMENT_DETAILS_RETENTION_DAYS}"
        )


if not DEBUG:
    secrets.refuse_unsafe_secrets(
        secret_key=SECRET_KEY,
        fernet_keys=FERNET_KEYS,
        fernet_keys_raw=_env("FERNET_KEYS"),
        vault_keys=PAYGATE_VAULT_KEYS,
        vault_keys_raw=_env("PAYGATE_VAULT_KEYS"),
        fingerprint_keys=PAYGATE_FINGERPRINT_KEYS,
    )

ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])

# The folders named here are created when Django starts (paygate/apps.py), not at import.
INSTALLED_APPS = [
    "paygate.apps.PaygateConfig",
    # The admin site answers 403 to staff without any permission and asks operators for a second
    # factor (paygate/adminsite.py).
    "paygate.adminconfig.PaygateAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    # The admin's second factor: TOTP devices (paygate/adminsite.py).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "gateways",
    "payments",
    "vault",
    "callbacks",
    "webhooks",
    "checkout",
    "ops",
]

MIDDLEWARE = [
    "core.logs.RequestIdMiddleware",
    "core.middleware.ApiNoStoreMiddleware",
    "core.middleware.RequestBodyLimitMiddleware",
    "core.middleware.UnstorableUrlMiddleware",
    "core.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed the second factor.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out admin login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# django-axes first: it refuses a locked-out username before the password is even hashed.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "paygate.urls"
WSGI_APPLICATION = "paygate.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "paygate" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
# The embedded default is a SQLite file in WAL mode with immediate transactions and a busy
# timeout: web, worker and beat are separate processes writing to one file, and SQLite's
# default journal mode fails concurrent writers with "database is locked".
DATABASE_URL = _env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=_env_int("DB_CONN_MAX_AGE", 60))}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Parameters bound by the server: psycopg then prepares a statement on a connection once it has
    # run it a few times, and PostgreSQL stops parsing and planning the hot path's statements anew
    # (bench: `make bench`, docs/capacity.md). Off for a pooler in transaction mode older than
    # PgBouncer 1.21, which cannot keep a connection's prepared statements.
    if _env_bool("DB_SERVER_SIDE_BINDING", True):
        # (Django turns psycopg's preparing off unless a threshold is given: after 5 runs.)
        DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _env("PAYGATE_SQLITE_PATH") or str(DATA_DIR / "paygate.sqlite3"),
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # Integration tests run a worker in another process, which cannot see an
            # in-memory test database.
            "TEST": {"NAME": str(DATA_DIR / "test_paygate.sqlite3")},
        }
    }
USING_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# The pay page speaks the customer's language (checkout/locale); the API and the admin stay English.
USE_I18N = True
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("pt", "Português")]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# WhiteNoise serves static files under gunicorn too; finders make collectstatic optional.
WHITENOISE_USE_FINDERS = True

# --- Metrics ------------------------------------------------------------------------------
# prometheus_client's multiprocess mode: every process writes here, /metrics adds them up.
# Must be set before prometheus_client is imported; `make run` empties it when it starts.
# Each host (container) writes in its own subfolder, since process ids repeat across hosts;
# /metrics merges every subfolder of the (shared) root.
PROMETHEUS_METRICS_ROOT = Path(_env("PROMETHEUS_METRICS_ROOT") or DATA_DIR / "metrics")
PROMETHEUS_MULTIPROC_DIR = PROMETHEUS_METRICS_ROOT / socket.gethostname()
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)

# --- Request limits -----------------------------------------------------------------------
# Bodies above this answer 413 before they are read, on every path (the admin included),
# whether announced by Content-Length or streamed (chunked).
PAYGATE_MAX_BODY_BYTES = _env_int("PAYGATE_MAX_BODY_BYTES", 64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = PAYGATE_MAX_BODY_BYTES
# Nothing is spooled to disk: no view accepts file uploads.
FILE_UPLOAD_MAX_MEMORY_SIZE = PAYGATE_MAX_BODY_BYTES
PAYGATE_MAX_JSON_DEPTH = _env_int("PAYGATE_MAX_JSON_DEPTH", 10)
# Requests per API key: "N/second", "N/minute" or "N/hour"; empty turns the limit off.
PAYGATE_RATE_LIMIT = "" if os.environ.get("PAYGATE_RATE_LIMIT") == "" else (_env("PAYGATE_RATE_LIMIT") or "6000/minute")

# Failed API-key attempts per client address (PAYGATE_TRUSTED_PROXIES), same format; empty: off.
PAYGATE_AUTH_FAILURE_LIMIT = (
    "" if os.environ.get("PAYGATE_AUTH_FAILURE_LIMIT") == "" else (_env("PAYGATE_AUTH_FAILURE_LIMIT") or "100/minute")
)
# Callbacks with a bad signature per gateway and client address, same format; empty: off.
PAYGATE_CALLBACK_FAILURE_LIMIT = (
    ""
    if os.environ.get("PAYGATE_CALLBACK_FAILURE_LIMIT") == ""
    else (_env("PAYGATE_CALLBACK_FAILURE_LIMIT") or "100/minute")
)
# Reverse proxies (IPs or CIDR networks) whose X-Forwarded-For is believed: the client is
# then the right-most address in it that is not one of them. Empty: the socket's address.
PAYGATE_TRUSTED_PROXIES = _env_list("PAYGATE_TRUSTED_PROXIES", [])

# --- Admin login lockout (django-axes) ----------------------------------------------------
# PCI DSS 8.3.4: at most 10 failed attempts, then locked for at least 30 minutes. Counted
# per username, and separately per client address (one address spraying many usernames), in
# the database: shared by every process, and a Redis restart does not unlock anyone. Unlock
# with `manage.py axes_reset_username <name>` (or `axes_reset_ip <address>`).
# Admin logins of superusers and operators need a TOTP code besides the password (PCI DSS
# 8.4.2). On unless DEBUG is: `make run`'s demo asks for none (its login is published).
PAYGATE_ADMIN_REQUIRE_OTP = _env_bool("PAYGATE_ADMIN_REQUIRE_OTP", not DEBUG)
OTP_TOTP_ISSUER = "Paygate"
AXES_FAILURE_LIMIT = _env_int("PAYGATE_ADMIN_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=_env_int("PAYGATE_ADMIN_LOCKOUT_MINUTES", 30))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.clientip.client_ip"
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# Repeated tries while locked out do not push the end of the lockout further away.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False

# --- REST framework -----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["payments.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.StrictJSONParser",
        "core.parsers.XMLParser",
        "core.parsers.TextXMLParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "core.renderers.XMLRenderer",
        "core.renderers.TextXMLRenderer",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.ApiKeyRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.renderers.JSONFallbackNegotiation",
    # No `?format=`: the representation follows the Accept header only.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Paygate API",
    "DESCRIPTION": "Deposits and withdrawals routed to payment gateways by country.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # One name for the payment methods wherever a field lists them (transactions, routes, saved methods).
    "ENUM_NAME_OVERRIDES": {"PaymentMethodEnum": "gateways.methods.PaymentMethod"},
    # Swagger UI's assets are served from this project, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.without_trailing_slashes",
    ],
}

# --- Celery -------------------------------------------------------------------------------
# The broker is chosen by the scheme of CELERY_BROKER_URL:
# - nothing set: the embedded default, kombu's filesystem transport: no server, and a worker in
#   a separate process picks tasks up from a shared folder. It lists the whole folder on every
#   fetch, so it slows down badly on large backlogs: use Redis or RabbitMQ for anything real;
# - `redis://` / `rediss://`: Redis (the default production choice; it also holds the cache);
# - `amqp://` / `amqps://`: RabbitMQ with quorum queues and publisher confirms, for a broker that
#   keeps every message it acknowledged through a crash (the cache then needs PAYGATE_CACHE_URL).
CELERY_BROKER_URL = _env("CELERY_BROKER_URL") or "filesystem://"
# RabbitMQ only: where core.queues.route_by_priority sends the tasks that Redis serves first.
PAYGATE_URGENT_QUEUE = "celery.urgent"
BROKER_SCHEME = CELERY_BROKER_URL.partition("://")[0].lower()
BROKER_IS_AMQP = BROKER_SCHEME in {"amqp", "amqps", "pyamqp"}
BROKER_DIR = Path(_env("PAYGATE_BROKER_DIR") or DATA_DIR / "broker")
if CELERY_BROKER_URL.startswith("filesystem"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        # Seconds between folder scans when idle; the default (1 s) caps a busy worker too.
        "polling_interval": 0.05,
    }
elif BROKER_IS_AMQP:
    from kombu import Exchange, Queue

    # A publish returns once RabbitMQ has the message in its queue (written to disk and, in a
    # cluster, to a majority of the quorum queue's replicas); a refusal raises in the publisher.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
    # Quorum queues: replicated, and written to disk before a publish is confirmed. They have no
    # message priorities and no global QoS (Celery then sets the prefetch per consumer, which
    # is what worker_prefetch_multiplier asks for anyway: CELERY_WORKER_DETECT_QUORUM_QUEUES).
    # What priorities do on Redis (health checks, sweeps and callbacks ahead of new payments)
    # a second queue does here: core.queues.route_by_priority sends them to PAYGATE_URGENT_QUEUE,
    # which every worker consumes beside the default queue with its own prefetch, so they never
    # wait behind a backlog of payment tasks.
    # Countdowns (retry backoff) use Celery's native delayed delivery (RabbitMQ's own delay
    # queues, so a worker never holds a delayed task), which needs topic exchanges.
    _quorum = {"x-queue-type": "quorum"}
    CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
    CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
    CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = "quorum"
    CELERY_TASK_CREATE_MISSING_QUEUE_EXCHANGE_TYPE = "topic"
    CELERY_WORKER_DETECT_QUORUM_QUEUES = True
    CELERY_TASK_QUEUES = [
        Queue(name, Exchange(name, type="topic"), routing_key=name, queue_arguments=_quorum)
        for name in ("celery", PAYGATE_URGENT_QUEUE)
    ]
else:
    # Longer than any task's run time plus its longest countdown, so that a task is not
    # delivered twice merely because it was still running or waiting.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": _env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
        # Redis answers in microseconds on a LAN: a publish to a dead broker gives up fast
        # and the API still answers 202 (the recovery sweep publishes it later).
        "socket_connect_timeout": 1,
        # Above kombu's 1 s BRPOP wait; bounds how long a publish to a hung Redis blocks a request.
        "socket_timeout": 2,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY = True
# A publish that cannot reach the broker gives up quickly; the recovery sweep republishes.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# Webhook deliveries go through no queue: the dispatcher (webhooks.dispatcher) reads the outbox.
CELERY_TASK_ROUTES: object = {}
if BROKER_IS_AMQP:
    # Then, on RabbitMQ, what Redis would serve first by priority goes to the urgent queue (above).
    CELERY_TASK_ROUTES = [CELERY_TASK_ROUTES, "core.queues.route_by_priority"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
# On Redis, priority 0 is served first: health checks and sweeps (priority 0) never wait
# behind a backlog of payment tasks (this default); applying callbacks (priority 3) finishes
# transactions already at a gateway before new ones are started. On RabbitMQ the same tasks
# go to the urgent queue instead (above), and payment tasks carry no priority: RabbitMQ 4's
# quorum queues read 5 and above as "high", which would put payments ahead of them.
CELERY_TASK_DEFAULT_PRIORITY = None if BROKER_IS_AMQP else 5
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 90
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fix-up otherwise closes the database connection around every task.
CELERY_DB_REUSE_MAX = _env_int("CELERY_DB_REUSE_MAX", 1000)
os.environ.setdefault("CELERY_DB_REUSE_MAX", str(CELERY_DB_REUSE_MAX))

# --- Cache: the circuit breaker's shared store (and rate limits) -----------------------------
# Redis when the broker is Redis (or PAYGATE_CACHE_URL says so); otherwise a folder that
# every local process shares.
PAYGATE_CACHE_URL = _env("PAYGATE_CACHE_URL") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else None
)
if BROKER_IS_AMQP and not PAYGATE_CACHE_URL:
    sys.stderr.write(
        "WARNING: CELERY_BROKER_URL is RabbitMQ and PAYGATE_CACHE_URL is not set: the circuit breaker "
        "and the rate limits use a folder on this machine, not shared with other machines. "
        "Set PAYGATE_CACHE_URL=redis://...\n"
    )
if PAYGATE_CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.ReusedClientRedisCache",
            "LOCATION": PAYGATE_CACHE_URL,
            "KEY_PREFIX": "paygate",
            # Short timeouts: when Redis is down, the breaker fails open quickly.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
            "KEY_PREFIX": "paygate",
        }
    }

# --- Gateway health and the circuit breaker --------------------------------------------------
PAYGATE_HEALTH_CHECK_INTERVAL_SECONDS = _env_int("PAYGATE_HEALTH_CHECK_INTERVAL_SECONDS", 10)
# Consecutive failed checks before a gateway is unhealthy, and good ones before it is healthy.
PAYGATE_HEALTH_FAILURE_THRESHOLD = _env_int("PAYGATE_HEALTH_FAILURE_THRESHOLD", 2)
PAYGATE_HEALTH_RECOVERY_THRESHOLD = _env_int("PAYGATE_HEALTH_RECOVERY_THRESHOLD", 2)
PAYGATE_BREAKER_CACHE = "default"
PAYGATE_BREAKER_FAILURE_THRESHOLD = _env_int("PAYGATE_BREAKER_FAILURE_THRESHOLD", 5)
PAYGATE_BREAKER_WINDOW_SECONDS = _env_int("PAYGATE_BREAKER_WINDOW_SECONDS", 30)
PAYGATE_BREAKER_COOLDOWN_SECONDS = _env_int("PAYGATE_BREAKER_COOLDOWN_SECONDS", 30)
# How long a claimed half-open probe blocks others if its worker never reports back.
PAYGATE_BREAKER_PROBE_TIMEOUT_SECONDS = _env_int("PAYGATE_BREAKER_PROBE_TIMEOUT_SECONDS", 30)

# --- Payments -----------------------------------------------------------------------------
# Where gateways send callbacks: this service's address as the gateways see it.
PAYGATE_PUBLIC_URL = (_env("PAYGATE_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")
PAYGATE_MAX_AMOUNT = _env("PAYGATE_MAX_AMOUNT") or "1000000"
# How long a transaction may wait in `pending` for a gateway before `no_gateway_available`.
PAYGATE_NO_GATEWAY_DEADLINE_SECONDS = _env_int("PAYGATE_NO_GATEWAY_DEADLINE_SECONDS", 900)
# CONTRACT §11: how long a transaction waits in `requires_action` for the customer; then its
# attempt is looked up once more and, still unsettled, it fails `expired`.
PAYGATE_ACTION_DEADLINE_SECONDS = _env_int("PAYGATE_ACTION_DEADLINE_SECONDS", 900)
# The pay page's return endpoint looks the attempt up at the gateway within this many seconds.
PAYGATE_PAY_RETURN_LOOKUP_TIMEOUT_SECONDS = _env_float("PAYGATE_PAY_RETURN_LOOKUP_TIMEOUT_SECONDS", 3.0)
# Pay page requests per client address per minute.
PAYGATE_PAY_PAGE_RATE_PER_MINUTE = _env_int("PAYGATE_PAY_PAGE_RATE_PER_MINUTE", 120)
# Backoff between rounds of routes that all did not act: base * 2**round, capped.
PAYGATE_RETRY_BACKOFF_BASE_SECONDS = _env_float("PAYGATE_RETRY_BACKOFF_BASE_SECONDS", 2.0)
PAYGATE_RETRY_BACKOFF_MAX_SECONDS = _env_float("PAYGATE_RETRY_BACKOFF_MAX_SECONDS", 60.0)
# How long a `processing` transaction may wait for its callback or a status look-up.
PAYGATE_PROCESSING_DEADLINE_SECONDS = _env_int("PAYGATE_PROCESSING_DEADLINE_SECONDS", 24 * 3600)
# Status look-ups of a transaction whose outcome is unknown: first after, then every.
PAYGATE_LOOKUP_FIRST_DELAY_SECONDS = _env_float("PAYGATE_LOOKUP_FIRST_DELAY_SECONDS", 60.0)
PAYGATE_LOOKUP_INTERVAL_SECONDS = _env_float("PAYGATE_LOOKUP_INTERVAL_SECONDS", 300.0)
# How long past its expected progress a transaction waits before the recovery sweep republishes it.
PAYGATE_SWEEP_GRACE_SECONDS = _env_float("PAYGATE_SWEEP_GRACE_SECONDS", 30.0)
PAYGATE_SWEEP_INTERVAL_SECONDS = _env_float("PAYGATE_SWEEP_INTERVAL_SECONDS", 10.0)
# While this many tasks wait in the pipeline's queue, the sweeps republish only what has been due
# for PAYGATE_SWEEP_MAX_DEFER_SECONDS: what is due then is most likely queued, not lost.
PAYGATE_SWEEP_BACKLOG_LIMIT = _env_int("PAYGATE_SWEEP_BACKLOG_LIMIT", 500)
PAYGATE_SWEEP_MAX_DEFER_SECONDS = _env_float("PAYGATE_SWEEP_MAX_DEFER_SECONDS", 600.0)
# Callbacks whose signature timestamp is further than this from now are refused.
PAYGATE_CALLBACK_TOLERANCE_SECONDS = _env_int("PAYGATE_CALLBACK_TOLERANCE_SECONDS", 300)
# Days after a transaction became final until its payment details are purged, leaving only
# their masked form (security codes, PINs and track data are dropped at once when it is final).
PAYGATE_PAYMENT_DETAILS_RETENTION_DAYS = _env_int("PAYGATE_PAYMENT_DETAILS_RETENTION_DAYS", 90)
# How often celery-beat runs the purge (when the periodic task is first created).
PAYGATE_PAYMENT_DETAILS_PURGE_INTERVAL_SECONDS = _env_int("PAYGATE_PAYMENT_DETAILS_PURGE_INTERVAL_SECONDS", 3600)

# Gateway hosts called as they are, plain http and private addresses included (comma-separated
# host names). With DEBUG off every other base URL must be https to a public address.
PAYGATE_GATEWAY_ALLOWED_HOSTS = _env_list("PAYGATE_GATEWAY_ALLOWED_HOSTS", [])

# --- Success-rate routing (CONTRACT §10) ------------------------------------------------------
# At most this share of a route's window (per window_seconds) is one client's outcomes: one
# merchant's declines cannot move a country's traffic for every merchant. 1 turns it off, as
# with DEBUG on: `make run`'s demo has one merchant, whose every outcome should count.
PAYGATE_ROUTING_CLIENT_SHARE = _env_float("PAYGATE_ROUTING_CLIENT_SHARE", 1.0 if DEBUG else 0.5)

# --- Merchant webhooks (CONTRACT §8) ---------------------------------------------------------
# Seconds between the tries of a delivery that failed; after the last one it is marked failed.
PAYGATE_WEBHOOK_RETRY_SCHEDULE = _env(
    "PAYGATE_WEBHOOK_RETRY_SCHEDULE",
    "60,300,300,600,600,600,600,600,3600,3600,3600,3600,3600,21600,21600,21600",
)
# A 2xx within this many seconds is a success.
PAYGATE_WEBHOOK_TIMEOUT_SECONDS = _env_float("PAYGATE_WEBHOOK_TIMEOUT_SECONDS", 10.0)
# With DEBUG off an endpoint must be https to a public address; this lifts both (development only).
PAYGATE_WEBHOOK_ALLOW_PRIVATE = _env_bool("PAYGATE_WEBHOOK_ALLOW_PRIVATE", False)
# With DEBUG off an endpoint's port must be one of these: other ports would let a merchant probe
# which services Paygate's network reaches.
PAYGATE_WEBHOOK_ALLOWED_PORTS = _env_list("PAYGATE_WEBHOOK_ALLOWED_PORTS", ["443"])
PAYGATE_WEBHOOK_MAX_ENDPOINTS = _env_int("PAYGATE_WEBHOOK_MAX_ENDPOINTS", 16)
# Tries in flight to one endpoint at a time: a hanging endpoint holds at most this many threads.
PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY = _env_int("PAYGATE_WEBHOOK_ENDPOINT_CONCURRENCY", 2)
# The dispatcher's sending threads (each waits on one endpoint's answer, at most the timeout): as
# many endpoints as this divided by the concurrency above can hang at once without delaying others.
PAYGATE_WEBHOOK_DISPATCH_THREADS = _env_int("PAYGATE_WEBHOOK_DISPATCH_THREADS", 128)
# Deliveries of one endpoint a dispatcher holds per slot (sent one after another on its connection):
# fewer claims under load; a dispatcher that dies leaves them to be claimed again after
# (this + 1) x the timeout + 5 s.
PAYGATE_WEBHOOK_CLAIM_DEPTH = _env_int("PAYGATE_WEBHOOK_CLAIM_DEPTH", 8)
# How often an idle dispatcher looks for due deliveries (a busy one looks as soon as a try ends).
PAYGATE_WEBHOOK_POLL_SECONDS = _env_float("PAYGATE_WEBHOOK_POLL_SECONDS", 0.2)
# POST /events/{id}/redeliver: at most this many per event, and per client, in the window.
PAYGATE_REDELIVER_RATE_PER_EVENT = _env("PAYGATE_REDELIVER_RATE_PER_EVENT", "5/hour")
PAYGATE_REDELIVER_RATE_PER_CLIENT = _env("PAYGATE_REDELIVER_RATE_PER_CLIENT", "60/minute")
PAYGATE_WEBHOOK_SWEEP_INTERVAL_SECONDS = _env_int("PAYGATE_WEBHOOK_SWEEP_INTERVAL_SECONDS", 10)

# --- Logging ------------------------------------------------------------------------------
LOG_LEVEL = _env("LOG_LEVEL") or "INFO"
# json: one JSON object per line (production, log shipping); text: for a terminal.
LOG_FORMAT = _env("LOG_FORMAT") or "json"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "core.logs.ContextFilter"},
        "redact": {"()": "core.logs.RedactingFilter"},
    },
    "formatters": {
        "json": {"()": "core.logs.JsonFormatter"},
        "text": {"()": "core.logs.TextFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context", "redact"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "urllib3": {"level": "WARNING"},
        "kombu.connection": {"level": "ERROR"},
    },
}

# --- Admin sessions, Content-Security-Policy, error reports, /metrics --------------------------
# Admin sessions end after this many idle seconds (PCI DSS 8.2.8: 15 minutes): every request
# renews the expiry. API requests carry no session and write none.
SESSION_COOKIE_AGE = _env_int("SESSION_COOKIE_AGE", 15 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True

# django-csp 4.x format. Every asset (admin, Swagger UI via drf-spectacular-sidecar) is served
# from this origin, so nothing else is allowed; data: images are the admin's and Swagger UI's icons.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        # NONCE: a page that uses `request.csp_nonce` (the pay page's form) allows that one script.
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

# Error reports (Django's debug page, the reports of logged exceptions) hide payment details
# and credentials whatever DEBUG says.
DEFAULT_EXCEPTION_REPORTER_FILTER = "core.reporting.PaygateExceptionReporterFilter"

# `Authorization: Bearer <token>` for GET /metrics. Required with DEBUG off: without it /metrics
# answers 404 there. With DEBUG on and no token, /metrics is open (development).
PAYGATE_METRICS_TOKEN = _env("PAYGATE_METRICS_TOKEN") or ""
if not DEBUG and not PAYGATE_METRICS_TOKEN:
    sys.stderr.write("WARNING: PAYGATE_METRICS_TOKEN is not set; /metrics answers 404 while DEBUG is off.\n")

CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", [])
if _env_bool("PAYGATE_BEHIND_TLS_PROXY", False):
    # The proxy terminates TLS and says so in this header; only trust it behind such a proxy.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

if not DEBUG:
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", True)
    # Probes and scrapes come from inside the network, over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = _env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = _env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Submitting a domain to the browsers' HSTS preload list is the domain owner's
        # decision, not a default a service can make for it.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

_check_formats()
