"""LangGraph crons through the real `langgraph-sdk` against a live server: schedule
triggers created, searched, counted, updated and deleted in LangGraph's `Cron` shape,
and the runs they start carrying the cron's options."""

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from langgraph_sdk import get_sync_client
from rest_framework_simplejwt.tokens import RefreshToken

from agents import services as agent_services
from agents.models import AgentTrigger
from projects import services as project_services
from projects.models import Project, Role
from threads import services
from threads.models import Message, Run, RunStatus, Thread

CRON_KEYS = {"cron_id", "assistant_id", "thread_id", "on_run_completed", "end_time", "schedule", "timezone",
             "created_at", "updated_at", "payload", "user_id", "next_run_date", "metadata", "enabled"}


def sdk(live_server, user):
    token = RefreshToken.for_user(user).access_token
    return get_sync_client(url=f"{live_server.url}/api", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def lg(live_server, owner):
    return sdk(live_server, owner)


@pytest.fixture
def agent(account, owner):
    return agent_services.create_agent(account=account, name="Reporter", model="echo-1", created_by=owner)


@pytest.fixture
def thread(project, owner, agent):
    return services.create_thread(project=project, created_by=owner, agent=agent)


def status_of(call) -> int:
    with pytest.raises(httpx.HTTPStatusError) as caught:
        call()
    return caught.value.response.status_code


def fire(cron_id) -> int:
    """Make the cron due now and tick the scheduler (what beat does every minute)."""
    AgentTrigger.objects.filter(pk=cron_id).update(next_fire_at=timezone.now() - timedelta(seconds=1))
    return agent_services.fire_due_triggers()


@pytest.mark.django_db(transaction=True)
def test_thread_cron_create_search_count_update_delete(lg, thread, agent, owner):
    cron = lg.crons.create_for_thread(
        str(thread.pk), str(agent.pk), schedule="0 9 * * 1-5", timezone="Europe/Paris",
        input={"messages": [{"role": "user", "content": "daily report"}]}, metadata={"team": "ops"},
        config={"configurable": {"depth": 2}}, context={"lang": "fr"}, multitask_strategy="enqueue",
    )
    assert set(cron) == CRON_KEYS
    assert cron["thread_id"] == str(thread.pk) and cron["assistant_id"] == str(agent.pk)
    assert cron["schedule"] == "0 9 * * 1-5" and cron["timezone"] == "Europe/Paris" and cron["enabled"] is True
    assert cron["metadata"] == {"team": "ops"} and cron["user_id"] == str(owner.pk)
    assert cron["payload"]["input"] == {"messages": [{"role": "user", "content": "daily report"}]}
    assert cron["payload"]["config"] == {"configurable": {"depth": 2}} and cron["payload"]["multitask_strategy"] == "enqueue"
    assert cron["next_run_date"] is not None and cron["on_run_completed"] is None

    other = lg.crons.create_for_thread(str(thread.pk), str(agent.pk), schedule="@hourly", metadata={"team": "dev"})
    found = lg.crons.search(thread_id=str(thread.pk))
    assert {c["cron_id"] for c in found} == {cron["cron_id"], other["cron_id"]}
    assert [c["cron_id"] for c in lg.crons.search(metadata={"team": "ops"})] == [cron["cron_id"]]
    assert [c["cron_id"] for c in lg.crons.search(assistant_id=str(agent.pk), sort_by="created_at",
                                                  sort_order="asc", limit=1, offset=1)] == [other["cron_id"]]
    assert lg.crons.search(select=["cron_id", "schedule"], limit=1, sort_order="asc")[0] == {
        "cron_id": cron["cron_id"], "schedule": "0 9 * * 1-5"}
    assert lg.crons.count(thread_id=str(thread.pk)) == 2
    assert lg.crons.count(metadata={"team": "dev"}) == 1

    updated = lg.crons.update(cron["cron_id"], schedule="30 18 * * *", timezone="UTC", metadata={"team": "sre"})
    assert updated["schedule"] == "30 18 * * *" and updated["metadata"] == {"team": "sre"}
    assert updated["next_run_date"].endswith("18:30:00Z") or "T18:30:00" in updated["next_run_date"]
    assert updated["payload"]["config"] == {"configurable": {"depth": 2}}  # untouched options stay
    disabled = lg.crons.update(cron["cron_id"], enabled=False)
    assert disabled["enabled"] is False and disabled["next_run_date"] is None
    assert [c["cron_id"] for c in lg.crons.search(enabled=False)] == [cron["cron_id"]]
    assert lg.crons.update(cron["cron_id"], enabled=True)["next_run_date"] is not None

    lg.crons.delete(cron["cron_id"])
    assert not AgentTrigger.objects.filter(pk=cron["cron_id"]).exists()
    assert [c["cron_id"] for c in lg.crons.search(thread_id=str(thread.pk))] == [other["cron_id"]]
    assert status_of(lambda: lg.crons.delete(cron["cron_id"])) == 404
    assert status_of(lambda: lg.crons.update(cron["cron_id"], schedule="@daily")) == 404


@pytest.mark.django_db(transaction=True)
def test_a_due_cron_starts_a_run_with_its_options(lg, thread, agent):
    cron = lg.crons.create_for_thread(
        str(thread.pk), str(agent.pk), schedule="*/5 * * * *",
        input={"messages": [{"role": "user", "content": "status?"}]}, metadata={"team": "ops"},
        config={"configurable": {"depth": 2}}, context={"lang": "fr"},
    )
    assert fire(cron["cron_id"]) == 1
    run = Run.objects.get(thread=thread)
    assert run.status == RunStatus.SUCCESS and run.agent_id == agent.pk
    assert run.kwargs["config"] == {"configurable": {"depth": 2}} and run.kwargs["context"] == {"lang": "fr"}
    assert run.metadata["team"] == "ops" and run.metadata["cron_id"] == cron["cron_id"]
    assert [(m.role, m.text) for m in Message.objects.filter(thread=thread).order_by("seq")] == [
        ("user", "status?"), ("assistant", "Echo: status?")]
    assert lg.runs.get(str(thread.pk), str(run.pk))["run_id"] == str(run.pk)
    trigger = AgentTrigger.objects.get(pk=cron["cron_id"])
    assert trigger.fire_count == 1 and trigger.next_fire_at > timezone.now()


@pytest.mark.django_db(transaction=True)
def test_a_deleted_or_disabled_or_ended_cron_starts_nothing(lg, thread, agent):
    deleted = lg.crons.create_for_thread(str(thread.pk), str(agent.pk), schedule="* * * * *")
    lg.crons.delete(deleted["cron_id"])
    assert fire(deleted["cron_id"]) == 0
    disabled = lg.crons.create_for_thread(str(thread.pk), str(agent.pk), schedule="* * * * *", enabled=False)
    assert disabled["next_run_date"] is None
    AgentTrigger.objects.filter(pk=disabled["cron_id"]).update(next_fire_at=timezone.now() - timedelta(seconds=1))
    assert agent_services.fire_due_triggers() == 0  # the due time is ignored while disabled
    ended = lg.crons.create_for_thread(str(thread.pk), str(agent.pk), schedule="* * * * *",
                                       end_time=timezone.now() + timedelta(hours=1))
    AgentTrigger.objects.filter(pk=ended["cron_id"]).update(end_time=timezone.now() - timedelta(minutes=1))
    assert fire(ended["cron_id"]) == 0
    assert AgentTrigger.objects.get(pk=ended["cron_id"]).next_fire_at is None
    assert not Run.objects.filter(thread=thread).exists()


@pytest.mark.django_db(transaction=True)
def test_stateless_cron_runs_on_a_new_thread_each_time(lg, agent, account):
    keep = lg.crons.create(str(agent.pk), schedule="@daily", on_run_completed="keep",
                           input={"messages": [{"role": "user", "content": "tick"}]})
    assert keep["thread_id"] is None and keep["on_run_completed"] == "keep"
    assert fire(keep["cron_id"]) == 1 and fire(keep["cron_id"]) == 1
    threads = Thread.objects.filter(schedule_id=keep["cron_id"])
    assert threads.count() == 2
    assert all(t.account_id == account.pk and t.project.is_default for t in threads)
    assert set(Run.objects.filter(thread__in=threads).values_list("status", flat=True)) == {RunStatus.SUCCESS}
    assert lg.crons.search(assistant_id=str(agent.pk))[0]["on_run_completed"] == "keep"
    assert lg.crons.create(str(agent.pk), schedule="@daily")["on_run_completed"] == "delete"


@pytest.mark.django_db(transaction=True)
def test_a_stateless_cron_outlives_the_threads_it_deletes(lg, agent, account):
    """Each tick's new thread is deleted after its run (`on_run_completed: delete`, the
    default). It is the only thread of the account's default project, but the cron
    refers to that project: the project stays, and the cron with it, for the next tick."""
    cron = lg.crons.create(str(agent.pk), schedule="@daily", input={"messages": [{"role": "user", "content": "t"}]})
    assert not Thread.objects.filter(account=account).exists()
    for _ in range(2):
        assert fire(cron["cron_id"]) == 1
        assert not Thread.objects.filter(account=account).exists()  # deleted after its run
    assert lg.crons.count() == 1 and Project.objects.filter(account=account, is_default=True).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("body, field", [
    ({"schedule": "not a cron"}, "schedule"),
    ({"schedule": "0 0 31 2 *"}, "schedule"),
    ({"schedule": "@daily", "timezone": "Mars/Olympus"}, "timezone"),
    ({"schedule": "@daily", "webhook": "ftp://x/y"}, "webhook"),
    ({"schedule": "@daily", "input": {"messages": [{"role": "robot", "content": "x"}]}}, "input"),
    ({"schedule": "@daily", "interrupt_before": ["nope"]}, "interrupt_before"),
    ({"schedule": "@daily", "stream_mode": "nope"}, "stream_mode"),
    ({"schedule": "@daily", "stream_mode": []}, "stream_mode"),
    ({}, "schedule"),
])
def test_bad_cron_bodies_are_422(lg, thread, agent, body, field):
    with pytest.raises(httpx.HTTPStatusError) as caught:
        lg.http.post(f"/threads/{thread.pk}/runs/crons", json={"assistant_id": str(agent.pk), **body})
    assert caught.value.response.status_code == 422
    assert field in caught.value.response.json()["errors"]
    assert not AgentTrigger.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_crons_respect_tenancy(live_server, lg, thread, agent, account, other_account, member_of, make_user):
    cron = lg.crons.create_for_thread(str(thread.pk), str(agent.pk), schedule="@daily")
    stranger = sdk(live_server, other_account.memberships.first().user)
    assert stranger.crons.search() == [] and stranger.crons.count() == 0
    assert status_of(lambda: stranger.crons.delete(cron["cron_id"])) == 404
    assert status_of(lambda: stranger.crons.update(cron["cron_id"], enabled=False)) == 404
    assert status_of(lambda: stranger.crons.create_for_thread(str(thread.pk), str(agent.pk), schedule="@daily")) == 404
    viewer = sdk(live_server, member_of(account, Role.VIEWER))
    assert [c["cron_id"] for c in viewer.crons.search()] == [cron["cron_id"]]
    assert status_of(lambda: viewer.crons.delete(cron["cron_id"])) == 403
    assert status_of(lambda: viewer.crons.create(str(agent.pk), schedule="@daily")) == 403
    assert status_of(lambda: lg.crons.create(str(thread.pk), schedule="@daily")) == 404  # not an assistant
    assert status_of(lambda: lg.crons.update("not-a-uuid", enabled=False)) == 422
    assert AgentTrigger.objects.get(pk=cron["cron_id"]).is_active


@pytest.mark.django_db(transaction=True)
def test_deleting_the_agent_stops_its_crons(lg, thread, agent):
    cron = lg.crons.create_for_thread(str(thread.pk), str(agent.pk), schedule="* * * * *")
    agent_services.delete_agent(agent=agent)
    assert lg.crons.search() == [] and not AgentTrigger.objects.filter(pk=cron["cron_id"]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_thread_s_crons_go_with_it_and_a_project_s_with_it(lg, thread, agent, account, owner, project):
    """As on LangGraph, deleting a thread deletes its crons: left behind, a thread's cron
    started a new, kept thread every tick where its one thread had been."""
    mine = lg.crons.create_for_thread(str(thread.pk), str(agent.pk), schedule="* * * * *",
                                      input={"messages": [{"role": "user", "content": "orphan?"}]})
    services.create_thread(project=project, created_by=owner)  # the project stays
    other_project = project_services.create_project(account=account, name="Elsewhere")
    elsewhere, _ = agent_services.create_trigger(agent=agent, kind="schedule", cron="* * * * *",
                                              project=other_project, created_by=owner)
    lg.threads.delete(str(thread.pk))
    assert not AgentTrigger.objects.filter(pk=mine["cron_id"]).exists()
    assert lg.crons.search(thread_id=str(thread.pk)) == [] and lg.crons.count() == 1
    assert fire(mine["cron_id"]) == 0 and not Thread.objects.filter(schedule_id=mine["cron_id"]).exists()
    project_services.delete_project(project=other_project)
    assert not AgentTrigger.objects.filter(pk=elsewhere.pk).exists() and lg.crons.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_cron_on_a_busy_thread_follows_its_multitask_strategy(lg, thread, agent):
    services.create_run(thread=thread, agent=agent, kwargs={"after_seconds": 3600})  # keeps the thread busy
    skip = lg.crons.create_for_thread(str(thread.pk), str(agent.pk), schedule="@daily")
    assert fire(skip["cron_id"]) == 0  # the default: this due time is skipped
    queue = lg.crons.create_for_thread(str(thread.pk), str(agent.pk), schedule="@daily", multitask_strategy="enqueue")
    assert fire(queue["cron_id"]) == 1
    assert list(Run.objects.filter(thread=thread).order_by("seq").values_list("status", flat=True)) == [
        RunStatus.PENDING, RunStatus.PENDING]


@pytest.mark.django_db
def test_search_and_count_cost_the_same_queries_for_any_number_of_crons(api, thread, agent):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    costs = []
    for extra in (1, 20):
        for _ in range(extra):
            agent_services.create_cron(agent=agent, schedule="@daily", thread=thread)
        with CaptureQueriesContext(connection) as search:
            found = api.post("/api/runs/crons/search", {"limit": 100}, format="json").json()
        with CaptureQueriesContext(connection) as count:
            assert api.post("/api/runs/crons/count", {}, format="json").json() == len(found)
        costs.append((len(search), len(count)))
    assert costs[0] == costs[1], costs
    assert costs[1][0] <= 3 and costs[1][1] <= 3, costs  # the crons (or their count), and the caller's memberships
