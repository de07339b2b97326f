"""The admin's app config: Django's own, with Paygate's site, and every action behind a permission.

Apart from paygate/adminsite.py, which imports models (the second factor's), so that loading
the app list does not import them.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig

# Actions of packages' admins that declare no permission, and what they need here: cleaning up
# lockout records deletes them; the others start, stop or run periodic tasks.
THIRD_PARTY_ACTION_PERMISSIONS = {"cleanup_expired_attempts": ("delete",)}


def actions_require_permissions(site: AdminSite) -> None:
    """Django runs an action without `permissions` for anyone who may view the model: give every
    such action (the packages' own) a permission, `change` unless named above."""
    for model_admin in site._registry.values():
        for name in model_admin.actions or ():
            function: Any = name if callable(name) else getattr(type(model_admin), name, None)
            if function is not None and not getattr(function, "allowed_permissions", None):
                function.allowed_permissions = THIRD_PARTY_ACTION_PERMISSIONS.get(
                    getattr(function, "__name__", ""), ("change",)
                )


class PaygateAdminConfig(AdminConfig):
    default_site = "paygate.adminsite.PaygateAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscovers every app's admin module
        from django.contrib import admin

        actions_require_permissions(admin.site)
