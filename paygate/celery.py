"""The Celery application: configured from Django settings (the `CELERY_` names)."""

import math
import os
from typing import Any

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

# `filesystem://` means the multi-process-safe variant of kombu's filesystem transport.
TRANSPORT_ALIASES["filesystem"] = "core.broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paygate.settings")


class PaygateCelery(Celery):
    def send_task(  # type: ignore[override]
        self, name: str, args: Any = None, kwargs: Any = None, countdown: float | None = None, **options: Any
    ) -> Any:
        # On RabbitMQ's quorum queues a countdown goes through Celery's native delayed delivery,
        # which counts whole seconds: it refuses less than one and cuts 1.5 to 1. Round up, so
        # that a task is never run before its time (a sub-second backoff waits one second).
        if countdown is not None and countdown > 0 and self.conf.task_default_queue_type == "quorum":
            countdown = math.ceil(countdown)
        return super().send_task(name, args, kwargs, countdown, **options)


app = PaygateCelery("paygate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from core.logs import connect_celery_signals  # noqa: E402  (after the app exists)

connect_celery_signals()
# The task metrics' signals are connected by `ops.apps` once the settings are loaded: the
# metrics must be created after settings point prometheus_client at its multiprocess folder.
