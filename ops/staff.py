"""The staff groups and what each may do in the admin: every group and every grant, here only.

Operators run the gateways (they edit gateways, routes, countries and merchants' webhook
endpoints, and may delete a saved payment method, which erases its details); auditors only
look. Both see transactions, attempts, events, refunds, callbacks and webhook deliveries.
A migration creates them (ops 0004); what an administrator grants besides is kept.
"""

from __future__ import annotations

from typing import Any

VIEW = ("view",)
VIEW_CHANGE = ("view", "change")

# (app label, model) → actions; the same for both groups unless a group's own line says more.
_SEEN_BY_BOTH: dict[tuple[str, str], tuple[str, ...]] = {
    ("gateways", "gateway"): VIEW,
    ("gateways", "gatewayroute"): VIEW,
    ("gateways", "country"): VIEW,
    ("payments", "transaction"): VIEW,
    ("payments", "attempt"): VIEW,
    ("payments", "event"): VIEW,
    ("payments", "refund"): VIEW,
    ("payments", "refundattempt"): VIEW,
    ("callbacks", "callbackevent"): VIEW,
    ("webhooks", "webhookendpoint"): VIEW,
    ("webhooks", "webhookdelivery"): VIEW,
    ("webhooks", "webhookdeliveryattempt"): VIEW,
    ("vault", "paymentmethod"): VIEW,
}
STAFF_GROUPS: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {
    "operators": {
        **_SEEN_BY_BOTH,
        ("gateways", "gateway"): VIEW_CHANGE,
        ("gateways", "gatewayroute"): VIEW_CHANGE,
        ("gateways", "country"): VIEW_CHANGE,
        ("webhooks", "webhookendpoint"): VIEW_CHANGE,
        ("vault", "paymentmethod"): ("view", "delete"),
    },
    "auditors": dict(_SEEN_BY_BOTH),
}


def staff_groups_ensure(*, apps: Any, using: str) -> None:
    """Create the groups that are missing and add the permissions they lack (`apps`: a migration's).

    Permissions are normally created after all migrations (post_migrate); on a fresh database
    they do not exist yet here, so they are created first. Permissions an administrator added
    to a group are kept.
    """
    from django.contrib.auth.management import create_permissions

    for label in sorted({label for grants in STAFF_GROUPS.values() for label, _ in grants}):
        app_config = apps.get_app_config(label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=using)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, grants in STAFF_GROUPS.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.add(
            *(
                Permission.objects.using(using).get(content_type__app_label=label, codename=f"{action}_{model}")
                for (label, model), actions in grants.items()
                for action in actions
            )
        )
