from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: probes, metrics, the gateway dashboard and the periodic-task schedule. It reads every app."""

    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Here, not where the Celery app is created: that happens before the settings have set
        # PROMETHEUS_MULTIPROC_DIR, and metrics created then would stay in one process's memory.
        from core.taskmetrics import connect_celery_metrics

        connect_celery_metrics()
