"""The admin site: Django's own, except that staff without any permission get 403, not an empty index."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django_otp import devices_for_user, user_has_device
from django_otp.admin import OTPAdminAuthenticationForm

# Who may not reach the admin on a password alone (PAYGATE_ADMIN_REQUIRE_OTP).
SECOND_FACTOR_GROUPS = ("operators",)


def second_factor_required(user: Any) -> bool:
    """Superusers and operators, when the setting is on; anyone who has a device anyway."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user_has_device(user):
        return True
    return bool(
        settings.PAYGATE_ADMIN_REQUIRE_OTP
        and (user.is_superuser or user.groups.filter(name__in=SECOND_FACTOR_GROUPS).exists())
    )


class AdminLoginForm(OTPAdminAuthenticationForm):
    """Password, then a TOTP code for whoever needs one; a user without a device who needs one
    is refused with a message that says how to get one."""

    def clean_otp(self, user: Any) -> None:
        if user is None or not second_factor_required(user):
            return
        if not user_has_device(user):
            raise forms.ValidationError(
                "This account needs a second factor and has none yet: ask an administrator to run "
                "`python manage.py add_totp_device <username>`.",
                code="otp_device_missing",
            )
        super().clean_otp(user)

    def _chosen_device(self, user: Any) -> Any:
        # One device (the usual authenticator app) needs no choosing on the one-page login form.
        device = super()._chosen_device(user)
        if device is None:
            devices = list(devices_for_user(user, confirmed=True, for_verify=True))
            if len(devices) == 1:
                device = devices[0]
        return device


class PaygateAdminSite(AdminSite):
    login_form = AdminLoginForm
    login_template = "otp/admin111/login.html"

    def has_permission(self, request: HttpRequest) -> bool:
        # A session that logged in before the factor was required, or through another door,
        # is not enough: the second factor is checked on every admin request.
        user = request.user
        verified = getattr(user, "is_verified", lambda: False)()
        return super().has_permission(request) and (verified or not second_factor_required(user))

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
