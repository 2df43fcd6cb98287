from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_the_agents_metadata(apps, schema_editor):
    """Every existing version starts with its agent's metadata (what the versions
    list showed for each of them until now); one UPDATE."""
    Agent, AgentVersion = apps.get_model("agents", "Agent"), apps.get_model("agents", "AgentVersion")
    AgentVersion.objects.update(metadata=Subquery(Agent.objects.filter(pk=OuterRef("agent_id")).values("metadata")[:1]))


class Migration(migrations.Migration):

    dependencies = [
        ("agents", "0005_triggers_go_with_their_thread"),
    ]

    operations = [
        migrations.AddField(
            model_name="agentversion",
            name="metadata",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(copy_the_agents_metadata, migrations.RunPython.noop),
    ]
