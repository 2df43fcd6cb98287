"""Triggers: schedules (validated cron and timezone, fired by the beat task at most
once per due time) and webhooks (a secret URL; revoked means 404)."""

import hashlib
import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from agents import services
from agents.models import AgentTrigger
from agents.tasks import fire_due_triggers
from projects import services as project_services
from projects.models import Project
from tests.conftest import client_for
from threads import services as thread_services
from threads.models import Run, Thread
from threads.selectors import deletion_impact

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent(account):
    return services.create_agent(account=account, name="Scheduler", model="m")


@pytest.mark.parametrize("cron, tz, field", [
    ("not cron", "UTC", "cron"),
    ("61 * * * *", "UTC", "cron"),
    ("* * * * * *", "UTC", "cron"),  # seconds: beat ticks every minute
    ("0 0 31 2 *", "UTC", "cron"),  # never matches
    ("", "UTC", "cron"),
    ("* " * 100, "UTC", "cron"),
    ("* * * * *", "Mars/Base", "timezone"),
    ("* * * * *", "", "timezone"),
    ("* * * * *", "../../etc/passwd", "timezone"),
])
def test_bad_schedules_are_422(api, agent, project, cron, tz, field):
    body = {"kind": "schedule", "cron": cron, "timezone": tz, "project_id": str(project.pk)}
    r = api.post(f"/api/agents/{agent.pk}/triggers", body, format="json")
    assert r.status_code == 422, r.content
    assert field in r.json()["errors"]
    assert not AgentTrigger.objects.exists()


def test_other_bad_triggers_are_422(api, agent, project):
    base = f"/api/agents/{agent.pk}/triggers"
    assert api.post(base, {"kind": "sometimes", "project_id": str(project.pk)}, format="json").status_code == 422
    assert api.post(base, {"kind": "webhook"}, format="json").status_code == 422  # nowhere to run
    assert api.post(base, {"kind": "webhook", "project_id": "x"}, format="json").status_code == 422


def test_schedule_due_time_follows_its_timezone(api, agent, project):
    body = {"kind": "schedule", "cron": "0 9 * * *", "timezone": "Europe/Paris", "project_id": str(project.pk)}
    r = api.post(f"/api/agents/{agent.pk}/triggers", body, format="json")
    assert r.status_code == 201, r.content
    trigger = AgentTrigger.objects.get()
    local = trigger.next_fire_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (9, 0) and trigger.next_fire_at > timezone.now()
    body = {"kind": "schedule", "cron": "@daily", "project_id": str(project.pk)}
    assert api.post(f"/api/agents/{agent.pk}/triggers", body, format="json").status_code == 201


def test_webhook_starts_a_run_and_is_404_once_revoked(api, anon, agent, project, django_capture_on_commit_callbacks):
    r = api.post(f"/api/agents/{agent.pk}/triggers", {"kind": "webhook", "project_id": str(project.pk)}, format="json")
    assert r.status_code == 201
    url = r.json()["webhook_url"]
    path, secret = url.split("testserver")[1], url.rsplit("/", 1)[1]
    trigger = AgentTrigger.objects.get()
    assert trigger.secret_hash == hashlib.sha256(secret.encode()).hexdigest()  # only the hash is stored
    listed = api.get(f"/api/agents/{agent.pk}/triggers").json()["results"]
    assert secret not in str(listed) and "webhook_url" not in listed[0]
    with django_capture_on_commit_callbacks(execute=True):
        hook = anon.post(path, {"message": "from the hook"}, format="json")
    assert hook.status_code == 202, hook.content
    run = Run.objects.get(pk=hook.json()["run_id"])
    assert run.status == "success" and run.result == "Echo: from the hook" and run.agent_id == agent.pk
    wrong = path.rsplit("/", 1)[0] + "/wrong-secret"
    assert anon.post(wrong, {}, format="json").status_code == 404
    assert api.delete(f"/api/agents/{agent.pk}/triggers/{trigger.pk}").status_code == 200
    assert anon.post(path, {}, format="json").status_code == 404
    assert api.delete(f"/api/agents/{agent.pk}/triggers/{trigger.pk}").status_code == 404


def test_webhook_on_a_busy_thread_is_409_and_gone_with_its_project(anon, agent, project, account):
    thread = thread_services.create_thread(project=project, agent=agent)
    thread_services.create_run(thread=thread, agent=agent)  # stays pending (no commit in this test)
    _, secret = services.create_trigger(agent=agent, kind="webhook", thread=thread)
    trigger = AgentTrigger.objects.get()
    assert anon.post(f"/api/webhooks/{trigger.pk}/{secret}", {}, format="json").status_code == 409
    elsewhere = project_services.create_project(account=account, name="Gone soon")
    _, secret = services.create_trigger(agent=agent, kind="webhook", project=elsewhere)
    orphan = AgentTrigger.objects.get(project=elsewhere)
    project_services.delete_project(project=elsewhere)  # the trigger goes with the project it runs in
    assert not AgentTrigger.objects.filter(pk=orphan.pk).exists()
    assert anon.post(f"/api/webhooks/{orphan.pk}/{secret}", {}, format="json").status_code == 404


def test_a_project_a_trigger_refers_to_outlives_its_last_thread(api, anon, agent, account,
                                                                django_capture_on_commit_callbacks):
    """Suna deletes a project with its last thread only when nothing else refers to it:
    a webhook that starts a new thread of the project each time does. Deleting the
    thread it started leaves the project (and its trigger) in place; the next call
    starts another thread there. A thread's own trigger goes with the thread, and a
    project with nothing left goes as before."""
    hooked = project_services.create_project(account=account, name="Hooked")
    _, secret = services.create_trigger(agent=agent, kind="webhook", project=hooked)
    trigger = AgentTrigger.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        first = anon.post(f"/api/webhooks/{trigger.pk}/{secret}", {"message": "one"}, format="json")
    thread = Run.objects.get(pk=first.json()["run_id"]).thread
    assert thread.project_id == hooked.pk and Thread.objects.filter(project=hooked).count() == 1

    assert deletion_impact(thread_ids_queryset=Thread.objects.filter(pk=thread.pk))["projects"] == 0
    assert api.delete(f"/api/threads/{thread.pk}").status_code == 200
    assert Project.objects.filter(pk=hooked.pk).exists() and AgentTrigger.objects.filter(pk=trigger.pk).exists()
    second = anon.post(f"/api/webhooks/{trigger.pk}/{secret}", {"message": "two"}, format="json")
    assert second.status_code == 202 and Thread.objects.filter(project=hooked).count() == 1

    alone = project_services.create_project(account=account, name="Alone")
    own = thread_services.create_thread(project=alone, agent=agent)
    services.create_trigger(agent=agent, kind="schedule", cron="@daily", thread=own)
    assert deletion_impact(thread_ids_queryset=Thread.objects.filter(pk=own.pk))["projects"] == 1
    assert api.delete(f"/api/threads/{own.pk}").status_code == 200
    assert not Project.objects.filter(pk=alone.pk).exists() and not AgentTrigger.objects.filter(thread_id=own.pk).exists()


def test_schedule_fires_once_per_due_time_even_with_two_ticks(agent, project):
    trigger, _ = services.create_trigger(agent=agent, kind="schedule", cron="*/5 * * * *", project=project)
    due = trigger.next_fire_at
    assert services.fire_due_triggers(now=due - timedelta(seconds=1)) == 0
    assert services.fire_due_triggers(now=due) == 1
    assert services.fire_due_triggers(now=due + timedelta(seconds=30)) == 0  # the second tick, same minute
    assert Run.objects.count() == 1
    thread = Thread.objects.get(schedule=trigger)
    assert thread.schedule_seq == 1 and thread.agent_id == agent.pk
    trigger.refresh_from_db()
    assert trigger.next_fire_at == due + timedelta(minutes=5) and trigger.fire_count == 1
    # Missed due times are not replayed: one run, then the next match after now.
    late = due + timedelta(hours=1, seconds=10)
    assert services.fire_due_triggers(now=late) == 1
    trigger.refresh_from_db()
    assert trigger.next_fire_at == due + timedelta(hours=1, minutes=5)
    assert Thread.objects.get(schedule=trigger, schedule_seq=2)


def test_a_due_time_on_a_busy_thread_is_skipped(agent, project, caplog):
    thread = thread_services.create_thread(project=project, agent=agent)
    thread_services.create_run(thread=thread, agent=agent)  # active
    trigger, _ = services.create_trigger(agent=agent, kind="schedule", cron="* * * * *", thread=thread)
    due = trigger.next_fire_at
    assert services.fire_due_triggers(now=due) == 0
    assert "skipped" in caplog.text and Run.objects.count() == 1
    trigger.refresh_from_db()
    assert trigger.next_fire_at == due + timedelta(minutes=1)


def test_the_beat_task_fires_due_triggers(agent, project, django_capture_on_commit_callbacks):
    assert settings.CELERY_BEAT_SCHEDULE["fire-due-agent-triggers"] == {
        "task": "agents.tasks.fire_due_triggers", "schedule": 60.0}
    trigger, _ = services.create_trigger(agent=agent, kind="schedule", cron="* * * * *", project=project,
                                         input={"message": "tick"})
    AgentTrigger.objects.filter(pk=trigger.pk).update(next_fire_at=timezone.now() - timedelta(seconds=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert fire_due_triggers.delay().get() == 1
    run = Run.objects.get()
    assert run.status == "success" and run.result == "Echo: tick"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_beat_processes_at_once_start_one_run_per_due_trigger(account, project):
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
    assert sorted(Thread.objects.values_list("schedule_id", flat=True)) == sorted(t.pk for t in triggers)


def test_a_trigger_for_a_thread_or_project_deleted_meanwhile_is_404(agent, project, account):
    """The view read the thread or project, then it was deleted before the trigger
    was written: a 404, not a foreign-key violation (a 500), and no trigger."""
    from config.errors import NotFound

    thread = thread_services.create_thread(project=project, agent=agent)
    thread_services.create_thread(project=project, agent=agent)  # the project outlives the thread
    thread_services.delete_thread(thread=thread)
    with pytest.raises(NotFound, match="Thread not found"):
        services.create_trigger(agent=agent, kind="webhook", thread=thread)
    elsewhere = project_services.create_project(account=account, name="Gone soon")
    project_services.delete_project(project=elsewhere)
    with pytest.raises(NotFound, match="Project not found"):
        services.create_trigger(agent=agent, kind="schedule", cron="@daily", project=elsewhere)
    other = services.create_agent(account=account, name="Gone too", model="m")
    services.delete_agent(agent=other)
    with pytest.raises(NotFound, match="Agent not found"):
        services.create_trigger(agent=other, kind="webhook", project=project)
    assert not AgentTrigger.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("gone", ["agent", "thread", "project"])
def test_triggers_created_while_what_they_reference_is_deleted(owner, account, gone):
    """Trigger creations racing the deletion of their agent, thread or project: each
    is a 201 (the deletion then takes it with it) or a 404, never a 500, and no
    trigger outlives what it referenced."""
    project = project_services.create_project(account=account, name="Racing")
    agent = services.create_agent(account=account, name="a", model="m")
    thread = thread_services.create_thread(project=project, agent=agent)
    body = {"kind": "webhook", "thread_id": str(thread.pk)} if gone == "thread" else \
        {"kind": "schedule", "cron": "* * * * *", "project_id": str(project.pk)}
    delete = {"agent": f"/api/agents/{agent.pk}", "thread": f"/api/threads/{thread.pk}",
              "project": f"/api/projects/{project.pk}"}[gone]
    statuses, barrier = [], threading.Barrier(5)

    def call(method, path, data=None):
        try:
            barrier.wait()
            statuses.append(getattr(client_for(owner), method)(path, data, format="json").status_code)
        finally:
            connection.close()

    workers = [threading.Thread(target=call, args=("post", f"/api/agents/{agent.pk}/triggers", body))
               for _ in range(4)] + [threading.Thread(target=call, args=("delete", delete))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(set(statuses)) in ([200, 201], [200, 404], [200, 201, 404]), statuses
    assert not AgentTrigger.objects.exists()


def test_a_trigger_on_a_closed_thread_is_409(api, agent, project):
    """A closed thread takes no new run: a trigger on it could never fire (as a call of
    a webhook on it is a 409), so creating one is refused; a cron on it too."""
    thread = thread_services.create_thread(project=project, agent=agent)
    thread_services.close_thread(thread=thread)
    for body in ({"kind": "webhook", "thread_id": str(thread.pk)},
                 {"kind": "schedule", "cron": "@daily", "thread_id": str(thread.pk)}):
        refused = api.post(f"/api/agents/{agent.pk}/triggers", body, format="json")
        assert refused.status_code == 409 and "closed" in refused.json()["detail"]
    cron = api.post(f"/api/threads/{thread.pk}/runs/crons", {"assistant_id": str(agent.pk), "schedule": "@daily"},
                    format="json")
    assert cron.status_code == 409 and not AgentTrigger.objects.exists()


def test_a_webhook_call_that_is_not_json_is_415_and_starts_nothing(anon, agent, project):
    _, secret = services.create_trigger(agent=agent, kind="webhook", project=project)
    trigger = AgentTrigger.objects.get()
    refused = anon.post(f"/api/webhooks/{trigger.pk}/{secret}", "message=hi", content_type="text/plain")
    assert refused.status_code == 415 and refused.json()["detail"]
    assert not Run.objects.exists() and AgentTrigger.objects.get().fire_count == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_project_trigger_created_while_the_last_thread_goes_is_kept_with_its_project_or_a_404(owner, account):
    """The trigger keeps its project from going with its last thread: created while
    that thread is deleted, it is a 201 whose trigger and project both stay, or a 404
    (the project went first) — never a 201 for a trigger the project's deletion took."""
    agent = services.create_agent(account=account, name="a", model="m")
    for _ in range(8):
        project = project_services.create_project(account=account, name="Last")
        thread = thread_services.create_thread(project=project, agent=agent)
        body = {"kind": "webhook", "project_id": str(project.pk)}
        statuses, barrier = {}, threading.Barrier(2)

        def call(name, method, path, data=None):
            try:
                barrier.wait()
                statuses[name] = getattr(client_for(owner), method)(path, data, format="json").status_code
            finally:
                connection.close()

        workers = [threading.Thread(target=call, args=("create", "post", f"/api/agents/{agent.pk}/triggers", body)),
                   threading.Thread(target=call, args=("delete", "delete", f"/api/threads/{thread.pk}"))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert statuses["delete"] == 200, statuses
        kept = AgentTrigger.objects.filter(project_id=project.pk).exists()
        if statuses["create"] == 201:
            assert kept and Project.objects.filter(pk=project.pk).exists(), statuses
        else:
            assert statuses["create"] == 404 and not kept and not Project.objects.filter(pk=project.pk).exists()
