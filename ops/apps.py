from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: probes, metrics, the gateway dashboard and the periodic-task schedule. It reads every app."""

    name = "ops"
    verbose_name = "Operations"
