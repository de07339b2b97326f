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


class PaygateAdminConfig(AdminConfig):
    default_site = "paygate.adminsite.PaygateAdminSite"
