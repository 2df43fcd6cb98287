"""Checkpoint writes lose the per-row cascade from their checkpoint (the thread's and
the run's cascades remove them now); duplicate and redundant indexes go (each
single-column index that a composite index leads with, and the two exact duplicates
of foreign-key indexes); checkpoints get an index on (thread, parent) for re-linking.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0002_initial'),
        ('projects', '0001_initial'),
        ('threads', '0003_checkpoint_write_thread_and_token_totals'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='checkpoint',
            name='checkpoint_run',
        ),
        migrations.RemoveIndex(
            model_name='message',
            name='message_run',
        ),
        migrations.AlterField(
            model_name='approval',
            name='thread',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.DB_CASCADE, related_name='approvals', to='threads.thread'),
        ),
        migrations.AlterField(
            model_name='checkpoint',
            name='thread',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.DB_CASCADE, related_name='checkpoints', to='threads.thread'),
        ),
        migrations.AlterField(
            model_name='checkpointwrite',
            name='checkpoint',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='writes', to='threads.checkpoint'),
        ),
        migrations.AlterField(
            model_name='checkpointwrite',
            name='thread',
            field=models.ForeignKey(on_delete=django.db.models.deletion.DB_CASCADE, related_name='+', to='threads.thread'),
        ),
        migrations.AlterField(
            model_name='message',
            name='thread',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.DB_CASCADE, related_name='messages', to='threads.thread'),
        ),
        # Dropping the single-column index of run.thread also drops any other index on
        # that column alone, the partial unique one_running_run_per_thread included:
        # remove it first and create it again after.
        migrations.RemoveConstraint(
            model_name='run',
            name='one_running_run_per_thread',
        ),
        migrations.AlterField(
            model_name='run',
            name='thread',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.DB_CASCADE, related_name='runs', to='threads.thread'),
        ),
        migrations.AddConstraint(
            model_name='run',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'running')), fields=('thread',), name='one_running_run_per_thread'),
        ),
        migrations.AlterField(
            model_name='thread',
            name='account',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.DB_CASCADE, related_name='threads', to='projects.account'),
        ),
        migrations.AlterField(
            model_name='thread',
            name='agent',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.DB_SET_NULL, related_name='threads', to='agents.agent'),
        ),
        migrations.AlterField(
            model_name='thread',
            name='project',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.DB_CASCADE, related_name='threads', to='projects.project'),
        ),
        migrations.AddIndex(
            model_name='checkpoint',
            index=models.Index(fields=['thread', 'parent_checkpoint_id'], name='checkpoint_parent'),
        ),
    ]
