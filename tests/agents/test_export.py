"""Export and import: an exported agent imports back with the same config and versions."""

import pytest

from agents.models import Agent, AgentTrigger

pytestmark = pytest.mark.django_db

CONFIG = ("name", "description", "system_prompt", "model", "tools", "mcps", "metadata", "current_version")


def strip(versions):
    return [{k: v[k] for k in ("number", "system_prompt", "model", "tools", "mcps")} for v in versions]


def test_export_then_import_round_trips(api, account, project):
    body = {"account_id": str(account.pk), "name": "Helper", "description": "helps", "system_prompt": "first",
            "model": "echo-1", "tools": ["web.search"], "mcps": [{"name": "fs", "url": "http://x"}],
            "metadata": {"team": "x"}}
    agent = api.post("/api/agents", body, format="json").json()
    api.patch(f"/api/agents/{agent['id']}", {"system_prompt": "second"}, format="json")
    api.patch(f"/api/agents/{agent['id']}", {"model": "echo-2"}, format="json")
    Agent.objects.filter(pk=agent["id"]).update(metadata={"team": "x", "is_suna_default": False})
    api.post(f"/api/agents/{agent['id']}/triggers", {"kind": "schedule", "cron": "0 9 * * 1",
                                                   "timezone": "Europe/Paris", "project_id": str(project.pk)},
             format="json")
    hook = api.post(f"/api/agents/{agent['id']}/triggers", {"kind": "webhook", "project_id": str(project.pk)},
                    format="json").json()
    doc = api.get(f"/api/agents/{agent['id']}/export").json()
    assert doc["metadata"] == {"team": "x"} and doc["exported_at"]
    assert (doc["system_prompt"], doc["model"], doc["current_version"]) == ("second", "echo-2", 3)
    assert [v["number"] for v in doc["versions"]] == [1, 2, 3]
    assert [(t["kind"], t["cron"]) for t in doc["triggers"]] == [("schedule", "0 9 * * 1"), ("webhook", "")]
    secret = hook["webhook_url"].rsplit("/", 1)[1]
    assert secret not in str(doc) and "secret" not in str(doc)

    r = api.post("/api/agents/import", {"account_id": str(account.pk), "project_id": str(project.pk),
                                        "document": doc}, format="json")
    assert r.status_code == 201, r.content
    new = r.json()
    assert new["id"] != agent["id"] and new["is_default"] is False
    again = api.get(f"/api/agents/{new['id']}/export").json()
    for key in CONFIG:
        assert again[key] == doc[key], key
    assert strip(again["versions"]) == strip(doc["versions"])
    assert [(t["kind"], t["cron"], t["timezone"]) for t in again["triggers"]] == [
        ("schedule", "0 9 * * 1", "Europe/Paris"), ("webhook", "", "UTC")]
    new_hook = AgentTrigger.objects.get(agent_id=new["id"], kind="webhook")
    assert new_hook.secret_hash and new_hook.secret_hash != AgentTrigger.objects.get(pk=hook["id"]).secret_hash


def test_import_without_a_project_skips_triggers_and_a_minimal_document_works(api, account):
    r = api.post("/api/agents/import", {"account_id": str(account.pk), "document": {
        "name": "Tiny", "model": "m", "system_prompt": "hi", "triggers": [{"kind": "webhook"}]}}, format="json")
    assert r.status_code == 201, r.content
    assert (r.json()["current_version"], r.json()["model"], r.json()["system_prompt"]) == (1, "m", "hi")
    assert not AgentTrigger.objects.exists()


@pytest.mark.parametrize("document", [
    {},
    {"name": "x"},  # no model, no versions
    {"name": "x" * 201, "model": "m"},
    {"name": "x", "versions": [{"model": None}]},
    {"name": "x", "versions": [{"number": "first", "model": "m"}]},
    {"name": "x", "versions": ["v1"]},
    {"name": "x", "model": "m", "tools": ["rm.rf"]},
    {"name": "x", "model": "m", "metadata": []},
    {"name": "x", "model": "m", "triggers": ["t"]},
    {"name": "x", "model": "m", "triggers": [{"kind": "schedule", "cron": "0 0 31 2 *"}]},
    {"name": "x", "model": "m", "triggers": [{"kind": "schedule", "cron": "* * * * *", "timezone": 5}]},
])
def test_bad_documents_are_422_and_create_nothing(api, account, project, document):
    r = api.post("/api/agents/import", {"account_id": str(account.pk), "project_id": str(project.pk),
                                        "document": document}, format="json")
    assert r.status_code == 422, r.content
    assert r.json()["detail"]
    assert not Agent.objects.exists()


def test_a_paused_schedule_is_imported_paused(api, account, project):
    """The export says which triggers are active; import kept none of it (a paused
    cron came back firing)."""
    from agents import services

    agent = services.create_agent(account=account, name="Paused", model="m")
    services.create_cron(agent=agent, schedule="0 9 * * *", project=project, enabled=False)
    services.create_trigger(agent=agent, kind="schedule", cron="0 10 * * *", project=project)
    doc = api.get(f"/api/agents/{agent.pk}/export").json()
    assert [t["is_active"] for t in doc["triggers"]] == [False, True]
    r = api.post("/api/agents/import", {"account_id": str(account.pk), "project_id": str(project.pk),
                                        "document": doc}, format="json")
    assert r.status_code == 201, r.content
    imported = AgentTrigger.objects.filter(agent_id=r.json()["id"])
    assert {t.cron: (t.is_active, t.next_fire_at is None) for t in imported} == {
        "0 9 * * *": (False, True), "0 10 * * *": (True, False)}
