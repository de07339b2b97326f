from django.apps import AppConfig


class GatewaysConfig(AppConfig):
    name = "gateways"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.localcache import invalidate_on_change

        from .models import GATEWAY_BOOKKEEPING_FIELDS, ROUTING_CACHE, Country, Gateway, GatewayRoute

        invalidate_on_change(Country, ROUTING_CACHE)
        invalidate_on_change(Gateway, ROUTING_CACHE, unless_only=GATEWAY_BOOKKEEPING_FIELDS)
        invalidate_on_change(GatewayRoute, ROUTING_CACHE)
