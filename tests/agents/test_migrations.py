"""The agents app's data migrations, run from the schema before them."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from agents.models import AgentVersion

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_migration_gives_existing_versions_their_agent_s_metadata(account):
    """Versions made before they kept metadata of their own start with their agent's
    (what the versions list showed for them)."""
    old, new = [("agents", "0005_triggers_go_with_their_thread")], [("agents", "0006_versions_keep_their_metadata")]
    executor = MigrationExecutor(connection)
    executor.migrate(old)
    apps = executor.loader.project_state(old).apps
    OldAgent, OldVersion = apps.get_model("agents", "Agent"), apps.get_model("agents", "AgentVersion")
    try:
        agents = [OldAgent.objects.create(account_id=account.pk, name=f"a{i}", metadata={"n": i}) for i in range(2)]
        for agent in agents:
            for number in (1, 2):
                OldVersion.objects.create(agent=agent, number=number, model="m")
        MigrationExecutor(connection).migrate(new)
        assert sorted(AgentVersion.objects.values_list("agent__name", "number", "metadata")) == [
            ("a0", 1, {"n": 0}), ("a0", 2, {"n": 0}), ("a1", 1, {"n": 1}), ("a1", 2, {"n": 1})]
    finally:
        call_command("migrate", verbosity=0)
