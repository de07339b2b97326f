"""The staff groups were extended here for events, refunds and webhooks; `ops.staff` defines them
all now and ops 0004 makes them. Kept, without operations, for the migrations that depend on it.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0002_webhook_sweep"),
        ("webhooks", "0001_initial"),
        ("payments", "0008_refunds"),
        ("callbacks", "0003_staff_groups"),
    ]

    operations = []
