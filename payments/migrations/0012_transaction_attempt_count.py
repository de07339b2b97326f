from django.db import migrations, models

# Existing transactions count the attempts they already have.
_BACKFILL = """
UPDATE payments_transaction SET attempt_count = (
    SELECT MAX(number) FROM payments_attempt WHERE payments_attempt.transaction_id = payments_transaction.id
)
WHERE EXISTS (SELECT 1 FROM payments_attempt WHERE payments_attempt.transaction_id = payments_transaction.id)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0011_transaction_payment_method"),
    ]

    operations = [
        migrations.AddField(
            model_name="transaction",
            name="attempt_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunSQL(_BACKFILL, migrations.RunSQL.noop),
    ]
