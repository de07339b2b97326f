"""The staff groups and their permissions, as `ops.staff` defines them all.

A database migrated by an earlier version may have the groups already, with grants an
administrator added: `staff_groups_ensure` only adds what is missing.
"""

from django.db import migrations

from ops.staff import staff_groups_ensure


def create_staff_groups(apps, schema_editor):
    staff_groups_ensure(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0002_webhook_sweep"),
        ("gateways", "0006_rename_webhook_secret_callback_secret"),
        ("payments", "0011_transaction_payment_method"),
        ("callbacks", "0005_gateway_index"),
        ("webhooks", "0005_delivery_plural"),
        ("vault", "0001_saved_payment_methods"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_staff_groups, migrations.RunPython.noop)]
