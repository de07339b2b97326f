from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.localcache import invalidate_on_change
        from core.masking import log_keys_register

        from .masking import is_account_key, is_sensitive_auth_key
        from .models import API_KEY_BOOKKEEPING_FIELDS, API_KEYS_CACHE, CUSTOMERS_CACHE, ClientAPIKey, Customer

        invalidate_on_change(ClientAPIKey, API_KEYS_CACHE, unless_only=API_KEY_BOOKKEEPING_FIELDS)
        invalidate_on_change(Customer, CUSTOMERS_CACHE, creations=False)
        # Security codes, PINs and track data never reach a log line; card and bank numbers only masked.
        log_keys_register(hidden=is_sensitive_auth_key, masked=is_account_key)
        # Registered in every process, the web included: services publish tasks by name
        # (`transaction_publish`), so that they never import the tasks that call them.
        from . import tasks  # noqa: F401
