from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("floor", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="floortransaction", name="status", field=models.CharField(default="pending", max_length=10)
        ),
        migrations.AddField(
            model_name="floortransaction",
            name="gateway_reference",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
        migrations.AddField(
            model_name="floortransaction", name="finished_at", field=models.DateTimeField(blank=True, null=True)
        ),
    ]
