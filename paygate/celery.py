"""The Celery application: configured from Django settings (the `CELERY_` names)."""

import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

# `filesystem://` means the multi-process-safe variant of kombu's filesystem transport.
TRANSPORT_ALIASES["filesystem"] = "core.broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paygate.settings")

app = Celery("paygate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from core.logs import connect_celery_signals  # noqa: E402  (after the app exists)

connect_celery_signals()
# The task metrics' signals are connected by `ops.apps` once the settings are loaded: the
# metrics must be created after settings point prometheus_client at its multiprocess folder.
