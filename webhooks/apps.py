from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Merchant webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.localcache import invalidate_on_change
        from payments.signals import event_recorded

        from . import tasks  # noqa: F401  (registers the delivery tasks in every process)
        from .models import ENDPOINTS_CACHE, WebhookEndpoint
        from .services import deliveries_create_for_event

        invalidate_on_change(WebhookEndpoint, ENDPOINTS_CACHE)
        # Inside the database transaction that writes the event: its deliveries commit with it.
        event_recorded.connect(deliveries_create_for_event, dispatch_uid="webhooks-deliveries")
