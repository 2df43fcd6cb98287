"""Agents: versions, the one default, the agent limit, the config and count caches,
and who may do what."""

import logging
import threading

import pytest
from django.core.cache import cache
from django.db import connection

from agents import caches, services
from agents.models import Agent
from config.errors import LimitReached
from projects.models import Role
from tests.conftest import client_for
from threads import services as thread_services

pytestmark = pytest.mark.django_db

UNREACHABLE_CACHE = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", "SOCKET_CONNECT_TIMEOUT": 0.5,
                    "SOCKET_TIMEOUT": 0.5},
    }
}


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
    r = api.patch(f"/api/agents/{agent['id']}", {"name": "Renamed", "description": "d"}, format="json")
    assert r.json()["current_version"] == 2 and r.json()["name"] == "Renamed"
    r = api.patch(f"/api/agents/{agent['id']}", {"model": "echo-1"}, format="json")  # unchanged config
    assert r.json()["current_version"] == 2
    r = api.patch(f"/api/agents/{agent['id']}", {"model": "echo-2", "tools": []}, format="json")
    assert r.json()["current_version"] == 3
    versions = api.get(f"/api/agents/{agent['id']}/versions").json()["results"]
    assert [(v["number"], v["system_prompt"], v["model"], v["tools"]) for v in versions] == [
        (1, "Be kind.", "echo-1", ["web.search"]), (2, "Be brief.", "echo-1", ["web.search"]),
        (3, "Be brief.", "echo-2", [])]
    listed = api.get("/api/agents").json()["results"]
    assert [(a["id"], a["model"], a["current_version"]) for a in listed] == [(agent["id"], "echo-2", 3)]


def test_bad_agent_input_is_422(api, account):
    base = {"account_id": str(account.pk), "name": "x", "system_prompt": "", "model": "m"}
    assert api.post("/api/agents", base | {"tools": ["rm.rf"]}, format="json").status_code == 422
    assert api.post("/api/agents", {"account_id": str(account.pk)}, format="json").status_code == 422
    assert api.post("/api/agents", base | {"account_id": "nope"}, format="json").status_code == 422
    agent = create(api, account)
    r = api.patch(f"/api/agents/{agent['id']}", {"tools": ["rm.rf"]}, format="json")
    assert r.status_code == 422 and r.json()["detail"]
    assert api.get(f"/api/agents/{agent['id']}/versions").json()["results"][-1]["number"] == 1


def test_one_default_per_account_switches_atomically(api, account):
    a = create(api, account, is_default=True)
    b = create(api, account, is_default=True)
    assert Agent.objects.get(pk=a["id"]).is_default is False
    assert Agent.objects.get(pk=b["id"]).is_default is True
    api.patch(f"/api/agents/{a['id']}", {"is_default": True}, format="json")
    assert list(Agent.objects.filter(is_default=True).values_list("pk", flat=True)) == [Agent.objects.get(pk=a["id"]).pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_new_defaults_in_an_empty_account_leave_one_default(account):
    """No agent to lock yet: the account's row lock still serialises them."""
    errors, barrier = [], threading.Barrier(4)

    def make(i):
        try:
            barrier.wait()
            services.create_agent(account=account, name=f"a{i}", model="m", is_default=True)
        except Exception as exc:  # noqa: BLE001 - any error is the failure this test looks for
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=make, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert Agent.objects.count() == 4 and Agent.objects.filter(is_default=True).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_making_an_agent_the_default_while_it_is_deleted_never_deadlocks(account):
    """The deletion locks the agent, then the account; making it the default locked
    them the other way round (PostgreSQL broke one off: a 409 `concurrent_conflict`).
    Now one of them wins: the agent is deleted, or it is the default (deletion 400)."""
    from config.errors import NotFound, Protected

    other = services.create_agent(account=account, name="other", model="m", is_default=True)
    for round_ in range(10):
        agent = services.create_agent(account=account, name=f"a{round_}", model="m")
        outcomes, errors, barrier = [], [], threading.Barrier(3)

        def run(step):
            try:
                barrier.wait()
                step()
                outcomes.append(step.__name__)
            except (NotFound, Protected) as exc:
                outcomes.append(type(exc).__name__)
            except Exception as exc:  # noqa: BLE001 - a deadlock is the failure this test looks for
                errors.append(exc)
            finally:
                connection.close()

        def update():
            services.update_agent(agent=agent, is_default=True)

        def update_other():
            services.update_agent(agent=other, is_default=True, name="other")

        def delete():
            services.delete_agent(agent=agent)

        workers = [threading.Thread(target=run, args=(step,)) for step in (update, update_other, delete)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert errors == []
        assert Agent.objects.filter(is_default=True).count() == 1
        if not Agent.objects.filter(pk=agent.pk).exists():
            assert "delete" in outcomes
        else:
            assert "Protected" in outcomes


def test_agent_limit_is_402_served_from_the_count_cache(api, account, django_capture_on_commit_callbacks):
    account.agent_limit = 2
    account.save()
    with django_capture_on_commit_callbacks(execute=True):
        create(api, account)
    assert cache.get(caches.count_key(account.pk)) is None  # invalidated after the create
    cache.set(caches.count_key(account.pk), 2)  # the cache says full: it is believed
    body = {"account_id": str(account.pk), "name": "2", "system_prompt": "", "model": "m"}
    r = api.post("/api/agents", body, format="json")
    assert r.status_code == 402 and r.json()["detail"]
    cache.delete(caches.count_key(account.pk))  # rebuilt from the database: 1 of 2
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/agents", body, format="json").status_code == 201
    assert api.post("/api/agents", body, format="json").status_code == 402
    assert Agent.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_creations_at_the_limit(account):
    account.agent_limit = 2
    account.save()
    outcomes, barrier = [], threading.Barrier(5)

    def make(i):
        try:
            barrier.wait()
            services.create_agent(account=account, name=f"a{i}", model="m")
            outcomes.append("created")
        except LimitReached:
            outcomes.append("402")
        finally:
            connection.close()

    workers = [threading.Thread(target=make, args=(i,)) for i in range(5)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(outcomes) == ["402"] * 3 + ["created"] * 2
    assert Agent.objects.count() == 2


def test_config_cache_never_serves_a_stale_config(account, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        agent = services.create_agent(account=account, name="a", system_prompt="v1", model="m")
    assert caches.agent_config(agent)["system_prompt"] == "v1"
    assert cache.get(caches.config_key(agent.pk, 1))["system_prompt"] == "v1"  # served from the cache now
    with django_capture_on_commit_callbacks(execute=True):
        updated = services.update_agent(agent=agent, system_prompt="v2")
    assert caches.agent_config(Agent.objects.get(pk=agent.pk))["system_prompt"] == "v2"
    assert cache.get(caches.config_key(agent.pk, 1)) is None
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_agent(agent=updated)
    # A reader still holding the agent it loaded before the delete gets nothing.
    assert caches.agent_config(updated) is None
    assert cache.get(caches.config_key(agent.pk, 2)) is None


def test_runs_read_the_current_config_through_the_cache(account, project, django_capture_on_commit_callbacks):
    agent = services.create_agent(account=account, name="a", model="model-1")
    thread = thread_services.create_thread(project=project)  # no model of its own: the agent's is read
    assert caches.agent_config(agent)["model"] == "model-1"  # cached
    with django_capture_on_commit_callbacks(execute=True):
        services.update_agent(agent=agent, model="model-2")
    run = thread_services.create_run(thread=thread, agent=Agent.objects.get(pk=agent.pk))
    assert run.model == "model-2"


def test_agent_count_cache_invalidated_on_create_and_delete(account, django_capture_on_commit_callbacks):
    assert caches.agent_count(account.pk) == 0
    with django_capture_on_commit_callbacks(execute=True):
        agent = services.create_agent(account=account, name="a", model="m")
    assert caches.agent_count(account.pk) == 1
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_agent(agent=agent)
    assert caches.agent_count(account.pk) == 0


def test_a_cache_outage_never_fails_a_request(api, account, settings, caplog, django_capture_on_commit_callbacks):
    settings.CACHES = UNREACHABLE_CACHE
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        agent = create(api, account, model="m1")
        assert api.patch(f"/api/agents/{agent['id']}", {"model": "m2"}, format="json").json()["model"] == "m2"
        assert api.get(f"/api/agents/{agent['id']}/export").json()["model"] == "m2"
        assert api.delete(f"/api/agents/{agent['id']}").status_code == 200
    assert "Agent cache" in caplog.text
    assert not Agent.objects.exists()


def test_internal_flags_are_not_set_or_removed_through_the_api(api, account):
    made = create(api, account, metadata={"team": "a", "is_system": True})
    assert made["metadata"] == {"team": "a"}
    system = services.create_agent(account=account, name="Suna", model="m", metadata={"is_suna_default": True})
    r = api.patch(f"/api/agents/{system.pk}", {"metadata": {"team": "b"}}, format="json")
    assert r.json()["metadata"] == {"team": "b", "is_suna_default": True}
    assert api.delete(f"/api/agents/{system.pk}").status_code == 400


def test_viewer_reads_but_cannot_write(account, project, member_of, api):
    agent = create(api, account)
    viewer = client_for(member_of(account, Role.VIEWER))
    assert viewer.get(f"/api/agents/{agent['id']}").status_code == 200
    assert viewer.get(f"/api/agents/{agent['id']}/export").status_code == 200
    body = {"account_id": str(account.pk), "name": "x", "system_prompt": "", "model": "m"}
    assert viewer.post("/api/agents", body, format="json").status_code == 403
    assert viewer.patch(f"/api/agents/{agent['id']}", {"name": "y"}, format="json").status_code == 403
    trigger = {"kind": "webhook", "project_id": str(project.pk)}
    assert viewer.post(f"/api/agents/{agent['id']}/triggers", trigger, format="json").status_code == 403
    document = api.get(f"/api/agents/{agent['id']}/export").json()
    r = viewer.post("/api/agents/import", {"account_id": str(account.pk), "document": document}, format="json")
    assert r.status_code == 403
    assert viewer.delete(f"/api/agents/{agent['id']}").status_code == 403
    assert Agent.objects.count() == 1 and Agent.objects.get().name == "Helper"


def test_another_accounts_agent_is_404(api, account, other_account, project):
    agent = create(api, account)
    stranger = client_for(other_account.memberships.get().user)
    for path in ("", "/versions", "/export", "/triggers"):
        assert stranger.get(f"/api/agents/{agent['id']}{path}").status_code == 404, path
    assert stranger.patch(f"/api/agents/{agent['id']}", {"name": "x"}, format="json").status_code == 404
    trigger = {"kind": "webhook", "project_id": str(project.pk)}
    assert stranger.post(f"/api/agents/{agent['id']}/triggers", trigger, format="json").status_code == 404
    assert stranger.get("/api/agents").json()["results"] == []
    body = {"account_id": str(account.pk), "name": "x", "system_prompt": "", "model": "m"}
    assert stranger.post("/api/agents", body, format="json").status_code == 404


def test_versions_and_triggers_are_paginated_like_every_list(api, account, project):
    """`limit`/`offset` page an agent's versions (oldest first) and triggers (in the
    order created), with `count` and the next page's link; a bad `limit` is a 422."""
    agent = services.create_agent(account=account, name="Paged", model="m1")
    for n in range(2, 6):
        services.update_agent(agent=agent, model=f"m{n}")
    for _ in range(3):
        services.create_trigger(agent=agent, kind="webhook", project=project)
    versions = api.get(f"/api/agents/{agent.pk}/versions", {"limit": 2, "offset": 1}).json()
    assert versions["count"] == 5 and [v["number"] for v in versions["results"]] == [2, 3]
    assert "offset=3" in versions["next"]
    first = api.get(f"/api/agents/{agent.pk}/triggers", {"limit": 2}).json()
    rest = api.get(f"/api/agents/{agent.pk}/triggers", {"limit": 2, "offset": 2}).json()
    assert first["count"] == 3 and len(first["results"]) == 2 and rest["next"] is None
    assert {t["id"] for t in first["results"] + rest["results"]} == {str(t.pk) for t in agent.triggers.all()}
    for url in (f"/api/agents/{agent.pk}/versions", f"/api/agents/{agent.pk}/triggers"):
        bad = api.get(url, {"limit": 0})
        assert bad.status_code == 422 and "detail" in bad.json()
