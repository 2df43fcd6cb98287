"""The indexing outbox is keyed by thread: its rows carry their message's thread and
the database cascade comes from the thread; the per-message cascade goes (a trigger
call per deleted message).

Adds the column and fills it from the messages. The next migration makes it required
(a separate migration: PostgreSQL refuses to alter a table with pending trigger events
in the transaction that updated it).
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def fill(apps, schema_editor):
    Message = apps.get_model("threads", "Message")
    PendingIndex = apps.get_model("threads", "PendingIndex")
    PendingIndex.objects.update(
        thread_id=Subquery(Message.objects.filter(pk=OuterRef("message_id")).values("thread_id")[:1])
    )
    PendingIndex.objects.filter(thread_id__isnull=True).delete()  # none: the message cascade kept it clean


class Migration(migrations.Migration):

    dependencies = [
        ("threads", "0007_index_outbox"),
    ]

    operations = [
        migrations.AlterField(
            model_name="pendingindex",
            name="message",
            field=models.OneToOneField(
                db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True,
                related_name="+", serialize=False, to="threads.message",
            ),
        ),
        migrations.AddField(
            model_name="pendingindex",
            name="thread",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.DB_CASCADE, related_name="+", to="threads.thread"
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
