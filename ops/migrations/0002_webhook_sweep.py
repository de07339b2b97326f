"""The webhook sweep joins the periodic tasks (existing ones are kept as they are)."""

from django.db import migrations

from ops.schedule import periodic_tasks_ensure


def create_periodic_tasks(apps, schema_editor):
    periodic_tasks_ensure(
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
    )


class Migration(migrations.Migration):
    dependencies = [("ops", "0001_periodic_tasks")]

    operations = [migrations.RunPython(create_periodic_tasks, migrations.RunPython.noop)]
