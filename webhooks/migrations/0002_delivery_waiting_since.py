from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0009_hot_path_indexes"),
        ("webhooks", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookdelivery",
            name="waiting_since",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                condition=models.Q(("waiting_since__isnull", False)),
                fields=["endpoint", "waiting_since"],
                name="webhook_delivery_waiting",
            ),
        ),
    ]
