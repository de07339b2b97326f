import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="FloorTransaction",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("type", models.CharField(max_length=10)),
                ("customer_id", models.CharField(max_length=100)),
                ("country", models.CharField(max_length=2)),
                ("amount", models.DecimalField(decimal_places=4, max_digits=24)),
                ("currency", models.CharField(max_length=3)),
                ("payment_details", models.JSONField(default=dict)),
                ("metadata", models.JSONField(default=dict)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
