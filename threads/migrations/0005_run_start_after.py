from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('threads', '0004_writes_without_checkpoint_cascade_index_cleanup'),
    ]

    operations = [
        migrations.AddField(
            model_name='run',
            name='start_after',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
