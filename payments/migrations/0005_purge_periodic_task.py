"""Once added the purge task; the ops app creates every periodic task now (ops 0001)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0004_keyed_fingerprints_and_sad"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations: list[migrations.operations.base.Operation] = []
