"""A transaction keeps its current attempt (read with the row lock, in one statement), and the
single-column indexes that composite ones already cover, or that no query uses but an
operator's delete, are dropped: each is one more entry to write on every insert and on every
status change (which no HOT update can avoid, the status being indexed)."""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def current_attempts_fill(apps: Any, schema_editor: Any) -> None:
    Transaction = apps.get_model("payments", "Transaction")
    Attempt = apps.get_model("payments", "Attempt")
    latest = Attempt.objects.filter(transaction_id=OuterRef("pk")).order_by("-number").values("pk")[:1]
    Transaction.objects.update(current_attempt=Subquery(latest))


class Migration(migrations.Migration):
    dependencies = [
        ("gateways", "0004_country_routing"),
        ("payments", "0008_refunds"),
    ]

    operations = [
        migrations.AddField(
            model_name="transaction",
            name="current_attempt",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="payments.attempt",
            ),
        ),
        migrations.RunPython(current_attempts_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="attempt",
            name="gateway",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="attempts",
                to="gateways.gateway",
            ),
        ),
        migrations.AlterField(
            model_name="attempt",
            name="transaction",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attempts",
                to="payments.transaction",
            ),
        ),
        migrations.AlterField(
            model_name="customer",
            name="client",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="customers",
                to="payments.apiclient",
            ),
        ),
        migrations.AlterField(
            model_name="customer",
            name="country",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="gateways.country",
                to_field="code",
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="client",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="payments.apiclient"
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="transaction",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="payments.transaction",
            ),
        ),
        migrations.AlterField(
            model_name="transaction",
            name="client",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="transactions",
                to="payments.apiclient",
            ),
        ),
        migrations.AlterField(
            model_name="transaction",
            name="country",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="gateways.country",
                to_field="code",
            ),
        ),
    ]
