from django.db import migrations, models

# Metadata containment (`metadata @> {...}`, LangGraph's thread search) uses a GIN
# index on PostgreSQL. SQLite has no GIN index (search there filters key by key).
GIN_SQL = "CREATE INDEX IF NOT EXISTS thread_metadata_gin ON threads_thread USING gin (metadata)"
DROP_GIN_SQL = "DROP INDEX IF EXISTS thread_metadata_gin"


def create_gin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GIN_SQL)


def drop_gin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_GIN_SQL)


class Migration(migrations.Migration):

    dependencies = [
        ("threads", "0005_run_start_after"),
    ]

    operations = [
        migrations.AddField(
            model_name="thread",
            name="ttl_strategy",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.RunPython(create_gin, drop_gin),
    ]
