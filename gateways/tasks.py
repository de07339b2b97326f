"""Health checks of every gateway, scheduled by celery-beat."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from .models import Gateway
from .services import gateway_check_health


@shared_task(name="gateways.check_health", acks_late=True, ignore_result=True, priority=0)
def check_health(gateway_id: int) -> None:
    # Half the interval: checks on schedule always run, a duplicate within one tick does not.
    gateway_check_health(gateway_id=gateway_id, min_interval=settings.PAYGATE_HEALTH_CHECK_INTERVAL_SECONDS / 2)


@shared_task(name="gateways.check_health_all", acks_late=True, ignore_result=True, priority=0)
def check_health_all() -> int:
    """Fan out one check per active gateway, so a slow gateway does not delay the others."""
    ids = list(Gateway.objects.filter(is_active=True).values_list("pk", flat=True))
    for gateway_id in ids:
        check_health.apply_async(args=(gateway_id,))
    return len(ids)
