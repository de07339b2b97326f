"""The single-column indexes that composite ones already cover, or that no query uses but an
operator's delete, are dropped: each is one more entry to write on every insert and on every
status change (which no HOT update can avoid, the status being indexed)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("gateways", "0004_country_routing"),
        ("payments", "0008_refunds"),
    ]

    operations = [
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
