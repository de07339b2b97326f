"""Every admin action of every app holds its permission: who may only view runs none of them."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.test import RequestFactory

pytestmark = pytest.mark.django_db

ACTIONS = [
    pytest.param(model, name, id=f"{model._meta.label_lower}.{name}")
    for model, model_admin in admin.site._registry.items()
    for name in [*(model_admin.actions or []), *(["delete_selected"] if model_admin.actions is not None else [])]
]


def _request(user: Any) -> Any:
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def _viewer_of(model: Any) -> Any:
    user = get_user_model().objects.create_user("viewer", "", "pw-for-tests-only", is_staff=True)
    codename = f"view_{model._meta.model_name}"
    user.user_permissions.add(
        Permission.objects.get(content_type=ContentType.objects.get_for_model(model), codename=codename)
    )
    return get_user_model().objects.get(pk=user.pk)  # a fresh object: permissions are cached per object


def test_every_model_admin_with_actions_is_covered() -> None:
    assert any(name == "rotate_secret" for _, name in (p.values for p in ACTIONS))


@pytest.mark.parametrize(("model", "name"), ACTIONS)
def test_an_action_declares_a_permission_beyond_view_and_a_viewer_cannot_run_it(
    model: Any, name: str, admin_user: Any
) -> None:
    model_admin = admin.site._registry[model]
    function = model_admin.get_action(name)[0]

    permissions = getattr(function, "allowed_permissions", ())

    assert permissions and "view" not in permissions, f"{name} must name the permission it needs"
    if name != "delete_selected" or model_admin.has_delete_permission(_request(admin_user)):
        assert name in model_admin.get_actions(_request(admin_user))
    assert name not in model_admin.get_actions(_request(_viewer_of(model)))
