from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "vault"
    verbose_name = "Saved payment methods"

    def ready(self) -> None:
        from payments.methods import saved_method_finder_register
        from payments.signals import event_recorded

        from .selectors import saved_method_for_customer
        from .services import on_event_recorded

        # Payments asks for a saved method's details without importing this app (it sits below it).
        saved_method_finder_register(saved_method_for_customer)
        event_recorded.connect(on_event_recorded, dispatch_uid="vault.save_on_completion")
