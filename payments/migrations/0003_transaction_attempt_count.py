from django.db import migrations, models
from django.db.models import Max, OuterRef, Subquery


def count_existing_attempts(apps, schema_editor):
    Transaction = apps.get_model("payments", "Transaction")
    Attempt = apps.get_model("payments", "Attempt")
    last_number = (
        Attempt.objects.filter(transaction_id=OuterRef("pk"))
        .values("transaction_id")
        .annotate(last=Max("number"))
        .values("last")
    )
    Transaction.objects.filter(pk__in=Attempt.objects.values("transaction_id")).update(
        attempt_count=Subquery(last_number)
    )


class Migration(migrations.Migration):
    dependencies = [("payments", "0002_periodic_tasks")]

    operations = [
        migrations.AddField(
            model_name="transaction",
            name="attempt_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(count_existing_attempts, migrations.RunPython.noop),
    ]
