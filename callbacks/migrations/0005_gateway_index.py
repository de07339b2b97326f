import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("callbacks", "0004_refund_callbacks"),
        ("gateways", "0004_country_routing"),
    ]

    operations = [
        migrations.AlterField(
            model_name="callbackevent",
            name="gateway",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="callback_events",
                to="gateways.gateway",
            ),
        ),
    ]
