"""The admin site: Django's own, except that staff without any permission get 403, not an empty index."""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse


class PaygateAdminSite(AdminSite):
    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        # Being staff only lets a user log in; what they may see comes from their permissions.
        if not self.get_app_list(request):
            raise PermissionDenied
        return super().index(request, extra_context)

    def app_index(
        self, request: HttpRequest, app_label: str, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        if not self.get_app_list(request, app_label):
            raise PermissionDenied
        return super().app_index(request, app_label, extra_context)


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
