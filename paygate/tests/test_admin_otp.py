"""The admin's second factor (PCI DSS 8.4.2): superusers and operators need a TOTP code besides
their password when PAYGATE_ADMIN_REQUIRE_OTP is on (the default with DEBUG off); the demo
(DEBUG on) asks for none; anyone who has a device uses it."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-only-9f2"


@pytest.fixture(autouse=True)
def groups(demo: None) -> None:
    """The demo seed's operators and auditors groups."""


def _user(name: str, group: str | None = None, *, superuser: bool = False) -> Any:
    user = get_user_model().objects.create_user(name, "", PASSWORD, is_staff=True, is_superuser=superuser)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


def _code(user: Any) -> str:
    device = TOTPDevice.objects.get(user=user)
    return f"{TOTP(device.bin_key, device.step, device.t0, device.digits).token():0{device.digits}d}"


def _login(client: Any, username: str, token: str = "") -> Any:
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": PASSWORD, "otp_token": token, "next": "/admin/"},
        REMOTE_ADDR="198.51.100.77",
    )


def _in(client: Any) -> bool:
    return client.get("/admin/").status_code == 200


def _add_device(username: str) -> str:
    out = StringIO()
    call_command("add_totp_device", username, stdout=out)
    return out.getvalue().splitlines()[-1]


@pytest.mark.parametrize(("group", "superuser"), [("operators", False), (None, True)], ids=["operator", "superuser"])
def test_a_password_alone_is_not_enough_for_operators_and_superusers(
    client: Any, settings: Any, group: str | None, superuser: bool
) -> None:
    settings.PAYGATE_ADMIN_REQUIRE_OTP = True
    # A wrong code holds the device back for factor * 2**(failures - 1) seconds: long enough
    # here that the check below does not depend on how fast the test runs.
    settings.OTP_TOTP_THROTTLE_FACTOR = 3600
    user = _user("ops", group, superuser=superuser)

    refused = _login(client, "ops")
    assert refused.status_code == 200 and "add_totp_device" in refused.content.decode()
    assert not _in(client)

    url = _add_device("ops")
    assert url.startswith("otpauth://totp/") and "issuer=Paygate" in url
    assert _login(client, "ops").status_code == 200 and not _in(client)  # no code
    assert _login(client, "ops", "000000").status_code == 200 and not _in(client)  # a wrong one
    # A wrong code holds the device back for a while (django-otp's throttle), the right one too.
    assert "temporarily disabled" in _login(client, "ops", _code(user)).content.decode()
    TOTPDevice.objects.filter(user=user).update(throttling_failure_count=0, throttling_failure_timestamp=None)
    assert _login(client, "ops", _code(user)).status_code == 302
    assert _in(client)


def test_a_session_without_the_second_factor_does_not_reach_the_admin(client: Any, settings: Any) -> None:
    settings.PAYGATE_ADMIN_REQUIRE_OTP = True
    client.force_login(_user("ops", "operators"))  # a password login, or one from before the rule

    assert client.get("/admin/").status_code == 302


def test_an_auditor_may_log_in_with_a_password_and_uses_a_device_once_it_has_one(client: Any, settings: Any) -> None:
    settings.PAYGATE_ADMIN_REQUIRE_OTP = True
    user = _user("audit", "auditors")
    assert _login(client, "audit").status_code == 302 and _in(client)

    client.logout()
    _add_device("audit")
    assert _login(client, "audit").status_code == 200 and not _in(client)
    assert _login(client, "audit", _code(user)).status_code == 302 and _in(client)


def test_the_demo_asks_operators_for_no_second_factor(client: Any, settings: Any) -> None:
    settings.PAYGATE_ADMIN_REQUIRE_OTP = False
    _user("ops", "operators")

    assert _login(client, "ops").status_code == 302
    assert _in(client)


def test_the_setting_is_on_unless_debug_is() -> None:
    from paygate import settings as module

    assert module.PAYGATE_ADMIN_REQUIRE_OTP is (not module.DEBUG)
