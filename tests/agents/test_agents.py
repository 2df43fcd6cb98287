"""Agents: versions, default, limit, caches, triggers, export/import, deletion."""

import threading
from datetime import timedelta

import pytest
from django.db import connection

from agents import caches, services
from agents.models import Agent, AgentTrigger, AgentVersion
from projects.models import Role
from tests.conftest import client_for
from threads import services as thread_services
from threads.models import Approval, Message, Run, Thread

pytestmark = pytest.mark.django_db


def create(api, account, **kw):
    body = {"account_id": str(account.pk), "name": "Helper", "system_prompt": "Be kind.", "model": "echo-1"} | kw
    r = api.post("/api/agents", body, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def test_create_update_versions(api, account):
    agent = create(api, account, tools=["web.search"])
    assert agent["current_version"] == 1 and agent["tools"] == ["web.search"]
    r = api.patch(f"/api/agents/{agent['id']}", {"system_prompt": "Be brief."}, format="json")
    assert r.json()["current_version"] == 2 and r.json()["system_prompt"] == "Be brief."
    r = api.patch(f"/api/agents/{agent['id']}", {"name": "Renamed"}, format="json")
    assert r.json()["current_version"] == 2 and r.json()["name"] == "Renamed"
    r = api.patch(f"/api/agents/{agent['id']}", {"model": "echo-2", "tools": []}, format="json")
    assert r.json()["current_version"] == 3
    versions = api.get(f"/api/agents/{agent['id']}/versions").json()["results"]
    assert [(v["number"], v["system_prompt"], v["model"]) for v in versions] == [
        (1, "Be kind.", "echo-1"), (2, "Be brief.", "echo-1"), (3, "Be brief.", "echo-2")]


def test_bad_agent_input_is_422(api, account):
    base = {"account_id": str(account.pk), "name": "x", "system_prompt": "", "model": "m"}
    assert api.post("/api/agents", base | {"tools": ["rm.rf"]}, format="json").status_code == 422
    assert api.post("/api/agents", {"account_id": str(account.pk)}, format="json").status_code == 422
    assert api.post("/api/agents", base | {"account_id": "nope"}, format="json").status_code == 422


def test_one_default_per_account_switches_atomically(api, account):
    a = create(api, account, is_default=True)
    b = create(api, account, is_default=True)
    assert Agent.objects.get(pk=a["id"]).is_default is False
    assert Agent.objects.get(pk=b["id"]).is_default is True
    api.patch(f"/api/agents/{a['id']}", {"is_default": True}, format="json")
    assert list(Agent.objects.filter(is_default=True).values_list("pk", flat=True)) == [Agent.objects.get(pk=a["id"]).pk]


def test_agent_limit_is_402_from_the_count_cache(api, account, django_capture_on_commit_callbacks):
    account.agent_limit = 1
    account.save()
    with django_capture_on_commit_callbacks(execute=True):
        create(api, account)
    r = api.post("/api/agents", {"account_id": str(account.pk), "name": "2", "system_prompt": "", "model": "m"},
                 format="json")
    assert r.status_code == 402 and r.json()["detail"]


def test_config_cache_never_serves_a_stale_config(account, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        agent = services.create_agent(account=account, name="a", system_prompt="v1", model="m")
    assert caches.agent_config(agent)["system_prompt"] == "v1"  # cached now
    with django_capture_on_commit_callbacks(execute=True):
        agent = services.update_agent(agent=agent, system_prompt="v2")
    assert caches.agent_config(Agent.objects.get(pk=agent.pk))["system_prompt"] == "v2"
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_agent(agent=agent)
    assert not Agent.objects.filter(pk=agent.pk).exists()
    from django.core.cache import cache

    assert cache.get(caches.config_key(agent.pk, 2)) is None


def test_agent_count_cache_invalidated_on_create_and_delete(account, django_capture_on_commit_callbacks):
    assert caches.agent_count(account.pk) == 0
    with django_capture_on_commit_callbacks(execute=True):
        agent = services.create_agent(account=account, name="a", model="m")
    assert caches.agent_count(account.pk) == 1
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_agent(agent=agent)
    assert caches.agent_count(account.pk) == 0


# --- triggers ---------------------------------------------------------------------------


def test_bad_triggers_are_422(api, account, project):
    agent = create(api, account)
    base = f"/api/agents/{agent['id']}/triggers"
    assert api.post(base, {"kind": "schedule", "cron": "not cron", "project_id": str(project.pk)},
                    format="json").status_code == 422
    assert api.post(base, {"kind": "schedule", "cron": "* * * * *", "timezone": "Mars/Base",
                           "project_id": str(project.pk)}, format="json").status_code == 422
    assert api.post(base, {"kind": "sometimes", "project_id": str(project.pk)}, format="json").status_code == 422
    assert api.post(base, {"kind": "webhook"}, format="json").status_code == 422


def test_webhook_starts_a_run_and_is_404_once_revoked(api, anon, account, project, django_capture_on_commit_callbacks):
    agent = create(api, account)
    r = api.post(f"/api/agents/{agent['id']}/triggers", {"kind": "webhook", "project_id": str(project.pk)}, format="json")
    assert r.status_code == 201
    path = r.json()["webhook_url"].split("testserver")[1]
    with django_capture_on_commit_callbacks(execute=True):
        hook = anon.post(path, {"message": "from the hook"}, format="json")
    assert hook.status_code == 202, hook.content
    run = Run.objects.get(pk=hook.json()["run_id"])
    assert run.status == "success" and run.result == "Echo: from the hook"
    wrong = path.rsplit("/", 1)[0] + "/wrong-secret"
    assert anon.post(wrong, {}, format="json").status_code == 404
    assert api.delete(f"/api/agents/{agent['id']}/triggers/{r.json()['id']}").status_code == 200
    assert anon.post(path, {}, format="json").status_code == 404


def test_schedule_fires_once_per_due_time_even_with_two_ticks(account, project):
    agent = services.create_agent(account=account, name="a", model="m")
    trigger, _ = services.create_trigger(agent=agent, kind="schedule", cron="*/5 * * * *", project=project)
    due = trigger.next_fire_at
    assert services.fire_due_triggers(now=due - timedelta(seconds=1)) == 0
    assert services.fire_due_triggers(now=due) == 1
    assert services.fire_due_triggers(now=due) == 0  # the second beat tick at the same minute
    assert Run.objects.count() == 1
    thread = Thread.objects.get(schedule=trigger)
    assert thread.schedule_seq == 1 and thread.agent_id == agent.pk
    trigger.refresh_from_db()
    assert trigger.next_fire_at == due + timedelta(minutes=5)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_beat_processes_at_once_start_one_run(account, project):
    agent = services.create_agent(account=account, name="a", model="m")
    triggers = [services.create_trigger(agent=agent, kind="schedule", cron="* * * * *", project=project)[0]
                for _ in range(3)]
    now = max(t.next_fire_at for t in triggers)
    started, barrier = [], threading.Barrier(2)

    def tick():
        try:
            barrier.wait()
            started.append(services.fire_due_triggers(now=now))
        finally:
            connection.close()

    workers = [threading.Thread(target=tick) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sum(started) == 3 and Run.objects.count() == 3


# --- export / import -------------------------------------------------------------------


def test_export_then_import_round_trips(api, account, project):
    agent = create(api, account, tools=["web.search"], metadata={"team": "x", "is_system": False})
    api.patch(f"/api/agents/{agent['id']}", {"system_prompt": "second"}, format="json")
    api.post(f"/api/agents/{agent['id']}/triggers", {"kind": "schedule", "cron": "0 9 * * 1",
                                                   "timezone": "Europe/Paris", "project_id": str(project.pk)},
             format="json")
    doc = api.get(f"/api/agents/{agent['id']}/export").json()
    assert doc["metadata"] == {"team": "x"} and "exported_at" in doc
    assert [v["number"] for v in doc["versions"]] == [1, 2]
    assert doc["triggers"][0]["cron"] == "0 9 * * 1" and "secret" not in str(doc["triggers"])
    r = api.post("/api/agents/import", {"account_id": str(account.pk), "project_id": str(project.pk),
                                        "document": doc}, format="json")
    assert r.status_code == 201, r.content
    new = r.json()
    assert new["id"] != agent["id"]
    again = api.get(f"/api/agents/{new['id']}/export").json()
    for key in ("name", "description", "system_prompt", "model", "tools", "mcps", "metadata", "current_version"):
        assert again[key] == doc[key], key
    strip = lambda vs: [{k: v[k] for k in ("number", "system_prompt", "model", "tools", "mcps")} for v in vs]  # noqa: E731
    assert strip(again["versions"]) == strip(doc["versions"])
    assert [(t["kind"], t["cron"], t["timezone"]) for t in again["triggers"]] == [("schedule", "0 9 * * 1", "Europe/Paris")]
    assert api.post("/api/agents/import", {"account_id": str(account.pk), "document": {}},
                    format="json").status_code == 422


# --- deletion ---------------------------------------------------------------------------


def test_delete_agent_keeps_history(api, anon, account, project, owner, django_capture_on_commit_callbacks):
    agent = services.create_agent(account=account, name="a", model="m", system_prompt="v1")
    services.update_agent(agent=agent, system_prompt="v2")
    agent = services.update_agent(agent=agent, system_prompt="v3")
    _, secret = services.create_trigger(agent=agent, kind="webhook", project=project)
    webhook = AgentTrigger.objects.get(kind="webhook")
    schedule, _ = services.create_trigger(agent=agent, kind="schedule", cron="* * * * *", project=project)
    threads = [thread_services.create_thread(project=project, agent=agent, created_by=owner) for _ in range(10)]
    for t in threads:
        thread_services.post_message(thread=t, role="user", content=[{"type": "text", "text": "hi"}], agent=agent)
    running = thread_services.create_run(thread=threads[0], agent=agent)  # stays pending: no commit here
    Approval.objects.create(thread=threads[1], status="pending")
    thread_services.close_thread(thread=threads[2])
    Run.objects.create(thread=threads[3], seq=1, status="success", agent=agent)

    with django_capture_on_commit_callbacks(execute=True):
        r = api.delete(f"/api/agents/{agent.pk}")
    assert r.status_code == 200 and r.json() == {"message": "Agent deleted successfully"}
    assert not AgentVersion.objects.exists() and not AgentTrigger.objects.exists()
    assert Thread.objects.filter(pk__in=[t.pk for t in threads], agent__isnull=True).count() == 10
    assert Message.objects.filter(thread__in=threads, agent__isnull=True).count() == 10
    assert Run.objects.filter(agent__isnull=True).count() == 2
    assert not Thread.objects.exclude(status="closed").exists()
    assert Run.objects.get(pk=running.pk).status == "interrupted"
    assert Approval.objects.get().status == "cancelled"
    assert anon.post(f"/api/webhooks/{webhook.pk}/{secret}", {}, format="json").status_code == 404
    assert services.fire_due_triggers(now=schedule.next_fire_at + timedelta(days=30)) == 0
    assert Run.objects.count() == 2


def test_protected_agents_are_400(api, account):
    default = create(api, account, is_default=True)
    r = api.delete(f"/api/agents/{default['id']}")
    assert r.status_code == 400 and r.json()["detail"].startswith("Cannot delete default agent")
    api.patch(f"/api/agents/{default['id']}", {"is_default": False}, format="json")
    assert api.delete(f"/api/agents/{default['id']}").status_code == 200
    for flag in ("is_system", "is_suna_default"):
        system = create(api, account, metadata={flag: True})
        r = api.delete(f"/api/agents/{system['id']}")
        assert r.status_code == 400 and "system" in r.json()["detail"]


def test_delete_agent_auth(api, anon, account, member_of, other_account):
    agent = create(api, account)
    assert anon.delete(f"/api/agents/{agent['id']}").status_code == 401
    assert client_for(member_of(account, Role.VIEWER)).delete(f"/api/agents/{agent['id']}").status_code == 403
    stranger = client_for(other_account.memberships.get().user)
    assert stranger.delete(f"/api/agents/{agent['id']}").status_code == 404
    assert api.delete("/api/agents/not-a-uuid").status_code == 422
    assert api.delete(f"/api/agents/{agent['id']}").status_code == 200
    assert api.delete(f"/api/agents/{agent['id']}").status_code == 404
