"""The indexing outbox's thread is required (filled by the previous migration)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("threads", "0008_pending_index_by_thread"),
    ]

    operations = [
        migrations.AlterField(
            model_name="pendingindex",
            name="thread",
            field=models.ForeignKey(on_delete=django.db.models.deletion.DB_CASCADE, related_name="+", to="threads.thread"),
        ),
    ]
