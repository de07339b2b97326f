"""The project's own app config: creates the folders this process writes to, when Django starts.

Not when the settings are imported: a tool that only reads them (mypy, a linter, the harness)
creates nothing. Every Paygate process (manage.py, bin/web, the Celery worker and beat) sets
Django up before it opens the database or the broker, or writes a metric.
"""

from __future__ import annotations

from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


def data_folders() -> list[Path]:
    """The folders the settings point this process at: the data folder (the embedded SQLite database),
    static files, this host's metrics and, with the embedded broker, its queue folders."""
    folders = [Path(settings.DATA_DIR), Path(settings.STATIC_ROOT), Path(settings.PROMETHEUS_MULTIPROC_DIR)]
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        folders += [Path(str(options[key])) for key in ("data_folder_in", "processed_folder", "control_folder")]
    return folders


class PaygateConfig(AppConfig):
    name = "paygate"
    verbose_name = "Paygate"

    def ready(self) -> None:
        for folder in data_folders():
            folder.mkdir(parents=True, exist_ok=True)
