"""A gateway's secret signs the callbacks it sends us: `callback_secret`, not to be confused with the
secret of a merchant's webhook endpoint. The column is renamed; its encrypted values stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("gateways", "0005_route_payment_methods"),
    ]

    operations = [
        migrations.RenameField(model_name="gateway", old_name="webhook_secret", new_name="callback_secret"),
        migrations.RenameField(
            model_name="gateway", old_name="previous_webhook_secret", new_name="previous_callback_secret"
        ),
    ]
