from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('threads', '0002_run_multitask_kwargs'),
    ]

    operations = [
        migrations.AddField(
            model_name='run',
            name='start_after',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
