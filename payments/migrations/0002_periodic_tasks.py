"""Once created the periodic tasks; the ops app does now (ops 0001), so this is kept empty for the history."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations: list[migrations.operations.base.Operation] = []
