"""The recovery sweeps run on celery-beat; created here so they exist after `migrate` and are editable in the admin."""

from django.conf import settings
from django.db import migrations

PERIODIC_TASKS = (
    # (name, task, seconds)
    ("Sweep due transactions", "payments.sweep_due", None),
    ("Sweep unapplied callbacks", "callbacks.sweep_unapplied", 30),
)


def create_periodic_tasks(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds in PERIODIC_TASKS:
        every = int(seconds or settings.PAYGATE_SWEEP_INTERVAL_SECONDS)
        schedule, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": schedule})


def remove_periodic_tasks(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _, _ in PERIODIC_TASKS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_periodic_tasks, remove_periodic_tasks)]
