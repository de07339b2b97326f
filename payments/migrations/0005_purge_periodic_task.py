"""The periodic task that purges payment details past their retention (databases migrated before it)."""

from django.db import migrations

from paygate.schedule import periodic_tasks_ensure

_NAME = "Purge expired payment details"


def create_periodic_tasks(apps, schema_editor):
    periodic_tasks_ensure(
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
    )


def remove_purge_task(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0004_keyed_fingerprints_and_sad"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_periodic_tasks, remove_purge_task)]
