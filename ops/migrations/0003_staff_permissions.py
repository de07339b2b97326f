"""Staff groups (callbacks 0003) for what came later: events, refunds and webhooks.

Operators edit merchants' webhook endpoints and redeliver; both groups see events, refunds and deliveries.
"""

from typing import Any

from django.db import migrations

GRANTS = {
    "operators": {
        ("webhooks", "webhookendpoint"): ("view", "change"),
        ("webhooks", "webhookdelivery"): ("view",),
        ("webhooks", "webhookdeliveryattempt"): ("view",),
        ("payments", "event"): ("view",),
        ("payments", "refund"): ("view",),
        ("payments", "refundattempt"): ("view",),
    },
    "auditors": {
        ("webhooks", "webhookendpoint"): ("view",),
        ("webhooks", "webhookdelivery"): ("view",),
        ("webhooks", "webhookdeliveryattempt"): ("view",),
        ("payments", "event"): ("view",),
        ("payments", "refund"): ("view",),
        ("payments", "refundattempt"): ("view",),
    },
}


def grant(apps: Any, schema_editor: Any) -> None:
    from django.contrib.auth.management import create_permissions

    for label in ("webhooks", "payments"):
        app_config = apps.get_app_config(label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, grants in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for (app_label, model), actions in grants.items():
            for action in actions:
                group.permissions.add(
                    Permission.objects.get(content_type__app_label=app_label, codename=f"{action}_{model}")
                )


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0002_webhook_sweep"),
        ("webhooks", "0001_initial"),
        ("payments", "0008_refunds"),
        ("callbacks", "0003_staff_groups"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
