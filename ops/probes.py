"""Liveness and readiness probes (CONTRACT §6)."""

from __future__ import annotations

import logging

from celery import current_app as celery_app
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        logger.warning("readiness: database unreachable", exc_info=True)
        return False


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        logger.warning("readiness: broker unreachable", exc_info=True)
        return False


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    down = [name for name, ok in checks.items() if not ok]
    body: dict[str, object] = {
        "status": "ok" if not down else "unavailable",
        "checks": {k: "ok" if v else "down" for k, v in checks.items()},
    }
    if down:
        body["error"] = {"code": "not_ready", "message": f"Unreachable: {', '.join(down)}.", "fields": {}}
    return JsonResponse(body, status=503 if down else 200)
