"""Checkpoint writes carry their thread and run; threads carry their token totals.

Adds the columns and fills them from the existing rows. The next migration makes
`thread` required on writes and drops the checkpoint -> write foreign key (a
separate migration: PostgreSQL refuses to alter a table with pending trigger events
in the transaction that updated it).
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import IntegerField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce


def fill(apps, schema_editor):
    Thread = apps.get_model("threads", "Thread")
    Message = apps.get_model("threads", "Message")
    Checkpoint = apps.get_model("threads", "Checkpoint")
    CheckpointWrite = apps.get_model("threads", "CheckpointWrite")
    owner = Checkpoint.objects.filter(pk=OuterRef("checkpoint_id"))
    CheckpointWrite.objects.update(
        thread_id=Subquery(owner.values("thread_id")[:1]), run_id=Subquery(owner.values("run_id")[:1])
    )

    def tokens(**filters):
        total = (
            Message.objects.filter(thread_id=OuterRef("pk"), **filters)
            .order_by().values("thread_id").annotate(n=Sum("token_count")).values("n")
        )
        return Coalesce(Subquery(total, output_field=IntegerField()), Value(0))

    Thread.objects.update(message_tokens=tokens())
    Thread.objects.filter(compaction_through_seq__isnull=False).update(
        compacted_tokens=tokens(seq__lte=OuterRef("compaction_through_seq"))
    )


class Migration(migrations.Migration):

    dependencies = [
        ("threads", "0002_run_multitask_kwargs"),
    ]

    operations = [
        migrations.AddField(
            model_name="checkpointwrite",
            name="thread",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.DB_CASCADE, related_name="+", to="threads.thread"
            ),
        ),
        migrations.AddField(
            model_name="checkpointwrite",
            name="run",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.DB_CASCADE, related_name="+",
                to="threads.run",
            ),
        ),
        migrations.AddField(
            model_name="thread",
            name="compacted_tokens",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="thread",
            name="message_tokens",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
