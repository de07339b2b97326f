"""The periodic tasks run by celery-beat, created here so they exist after `migrate`.

A database migrated by an earlier version may have some of them already: `periodic_tasks_ensure`
creates only what is missing.
"""

from django.db import migrations

from ops.schedule import periodic_tasks, periodic_tasks_ensure


def create_periodic_tasks(apps, schema_editor):
    periodic_tasks_ensure(
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
    )


def remove_periodic_tasks(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _, _ in periodic_tasks()]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("gateways", "0002_route_list_validators"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_periodic_tasks, remove_periodic_tasks)]
