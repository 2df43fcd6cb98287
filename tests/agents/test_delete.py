"""DELETE /api/agents/{id}: versions and triggers go, the history (threads, runs,
messages) stays with the agent reference null, open threads are cancelled and closed."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import services
from agents.models import Agent, AgentTrigger, AgentVersion
from config.errors import Conflict
from projects.models import Role
from tests.conftest import client_for
from threads import services as thread_services
from threads.models import Approval, Message, Run, Thread

pytestmark = pytest.mark.django_db


def say(thread, agent, text="hi"):
    thread_services.post_message(thread=thread, role="user", content=[{"type": "text", "text": text}], agent=agent)


def agent_with_history(account, project, owner, *, threads=10):
    """3 versions, a webhook and a schedule, and `threads` threads: one running, one
    with a pending run, one awaiting an approval, two closed, the rest idle with
    finished runs; two messages each."""
    agent = services.create_agent(account=account, name="Doomed", model="m", system_prompt="v1")
    services.update_agent(agent=agent, system_prompt="v2")
    agent = services.update_agent(agent=agent, system_prompt="v3")
    _, secret = services.create_trigger(agent=agent, kind="webhook", project=project)
    schedule, _ = services.create_trigger(agent=agent, kind="schedule", cron="* * * * *", project=project)
    made = [thread_services.create_thread(project=project, agent=agent, created_by=owner) for _ in range(threads)]
    for t in made:
        say(t, agent)
        say(t, agent, "again")
    running = thread_services.create_run(thread=made[0], agent=agent)  # pending: nothing commits in a db test
    Run.objects.filter(pk=running.pk).update(status="running")
    thread_services.create_run(thread=made[1], agent=agent)
    if threads > 2:
        paused = thread_services.create_run(thread=made[2], agent=agent)
        Run.objects.filter(pk=paused.pk).update(status="running")
        Thread.objects.filter(pk=made[2].pk).update(status="awaiting")
        Approval.objects.create(thread=made[2], run=paused, status="pending")
    for t in made[3:5]:
        thread_services.close_thread(thread=t)
    for seq, t in enumerate(made[5:], start=1):
        Run.objects.create(thread=t, seq=seq, status="success", agent=agent)
    webhook = AgentTrigger.objects.get(agent=agent, kind="webhook")
    return agent, made, (webhook, secret), schedule


def test_delete_agent_keeps_history(api, anon, account, project, owner, django_capture_on_commit_callbacks):
    agent, threads, (webhook, secret), schedule = agent_with_history(account, project, owner)
    other = services.create_agent(account=account, name="Stays", model="m")
    bystander = thread_services.create_thread(project=project, agent=other)
    ids = [t.pk for t in threads]
    assert AgentVersion.objects.filter(agent=agent).count() == 3
    assert Thread.objects.filter(pk__in=ids, status__in=["running", "awaiting"]).count() == 3
    messages, runs = Message.objects.count(), Run.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        r = api.delete(f"/api/agents/{agent.pk}")
    assert r.status_code == 200 and r.json() == {"message": "Agent deleted successfully"}

    assert not Agent.objects.filter(pk=agent.pk).exists()
    assert not AgentVersion.objects.filter(agent_id=agent.pk).exists()
    assert not AgentTrigger.objects.filter(agent_id=agent.pk).exists()
    assert Thread.objects.filter(pk__in=ids, agent__isnull=True).count() == 10
    assert Thread.objects.filter(pk__in=ids, status="closed", completed_at__isnull=False).count() == 10
    assert Message.objects.count() == messages == 20
    assert Message.objects.filter(thread__in=ids, agent__isnull=False).count() == 0
    assert Run.objects.count() == runs and not Run.objects.filter(agent__isnull=False).exists()
    assert not Run.objects.filter(status__in=["pending", "running"]).exists()
    assert Run.objects.filter(status="interrupted").count() == 3
    assert list(Approval.objects.values_list("status", flat=True)) == ["cancelled"]
    bystander.refresh_from_db()
    assert (bystander.status, bystander.agent_id) == ("idle", other.pk)
    assert AgentVersion.objects.filter(agent=other).count() == 1
    # The webhook URL is gone, and the schedule never fires again, however late.
    assert anon.post(f"/api/webhooks/{webhook.pk}/{secret}", {}, format="json").status_code == 404
    for later in (timedelta(minutes=1), timedelta(days=30)):
        assert services.fire_due_triggers(now=schedule.next_fire_at + later) == 0
    assert Run.objects.count() == runs


def test_deletion_is_set_based(account, project, owner):
    """Deleting an agent with 30 threads costs the same queries as with 2 (21 here,
    6 of them the savepoints of the test's transaction, one listing the interrupted
    runs whose event streams end after commit, one the deletion receipt, one the
    account's row lock that keeps threads from being created with the agent meanwhile)."""
    counts = []
    for n in (2, 30):
        agent, *_ = agent_with_history(account, project, owner, threads=n)
        with CaptureQueriesContext(connection) as queries:
            services.delete_agent(agent=agent)
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert counts[1] <= 21, counts


def test_default_and_system_agents_are_400(api, account):
    default = services.create_agent(account=account, name="Default", model="m", is_default=True)
    r = api.delete(f"/api/agents/{default.pk}")
    assert r.status_code == 400 and r.json()["detail"].startswith("Cannot delete default agent")
    for flag in ("is_system", "is_suna_default"):
        system = services.create_agent(account=account, name=flag, model="m", metadata={flag: True})
        r = api.delete(f"/api/agents/{system.pk}")
        assert r.status_code == 400 and "system agent" in r.json()["detail"]
    assert Agent.objects.count() == 3 and AgentVersion.objects.count() == 3
    assert api.patch(f"/api/agents/{default.pk}", {"is_default": False}, format="json").status_code == 200
    assert api.delete(f"/api/agents/{default.pk}").status_code == 200
    assert not Agent.objects.filter(pk=default.pk).exists()


def test_delete_agent_auth(api, anon, account, member_of, other_account):
    agent = services.create_agent(account=account, name="a", model="m")
    assert anon.delete(f"/api/agents/{agent.pk}").status_code == 401
    assert client_for(member_of(account, Role.VIEWER)).delete(f"/api/agents/{agent.pk}").status_code == 403
    stranger = client_for(other_account.memberships.get().user)
    assert stranger.delete(f"/api/agents/{agent.pk}").status_code == 404
    assert api.delete("/api/agents/not-a-uuid").status_code == 422
    assert Agent.objects.filter(pk=agent.pk).exists()
    member = client_for(member_of(account, Role.MEMBER))
    assert member.delete(f"/api/agents/{agent.pk}").status_code == 200
    assert api.delete(f"/api/agents/{agent.pk}").status_code == 404


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_delete_while_turns_start_on_its_threads(account, project):
    """Runs starting on the agent's threads while it is deleted: no deadlock, no
    error but a clean 409, and no thread left open or running afterwards."""
    agent = services.create_agent(account=account, name="a", model="m")
    threads = [thread_services.create_thread(project=project, agent=agent) for _ in range(6)]
    errors, barrier = [], threading.Barrier(len(threads) + 1)

    def start(thread):
        try:
            barrier.wait()
            thread_services.create_run(thread=thread, agent=agent)
        except Conflict:
            pass  # the thread was closed first
        except Exception as exc:  # noqa: BLE001 - any other error is the failure
            errors.append(exc)
        finally:
            connection.close()

    def delete():
        try:
            barrier.wait()
            services.delete_agent(agent=agent)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=start, args=(t,)) for t in threads] + [threading.Thread(target=delete)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert not Agent.objects.exists()
    assert Thread.objects.filter(status="closed", agent__isnull=True).count() == 6
    assert not Run.objects.filter(status__in=["pending", "running"]).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_delete_while_its_webhook_is_called(account, project):
    """Each webhook call either finishes before the deletion (its thread is then
    closed with the others) or finds the trigger gone (404): no thread is left open."""
    from config.errors import NotFound

    agent = services.create_agent(account=account, name="a", model="m")
    _, secret = services.create_trigger(agent=agent, kind="webhook", project=project)
    trigger_id = AgentTrigger.objects.get().pk
    outcomes, errors, barrier = [], [], threading.Barrier(5)

    def call():
        try:
            barrier.wait()
            services.fire_webhook(trigger_id=trigger_id, secret=secret, input={"message": "hi"})
            outcomes.append("started")
        except NotFound:
            outcomes.append("404")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    def delete():
        try:
            barrier.wait()
            services.delete_agent(agent=agent)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=call) for _ in range(4)] + [threading.Thread(target=delete)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == [] and len(outcomes) == 4
    assert Thread.objects.count() == outcomes.count("started")
    assert not Thread.objects.exclude(status="closed").exists()
    assert not AgentTrigger.objects.exists() and not Agent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_with_a_turn_on_its_thread_is_run_again_not_a_409(account, project):
    """A turn holds its thread's lock and then wants the agent's, while the deletion
    holds the agent's and its closing of the threads wants the thread's: PostgreSQL
    breaks the deletion off (a deadlock); the service runs it again once the turn is
    through, instead of answering 409 "send the request again"."""
    from django.db import OperationalError, transaction

    from tests.conftest import on_postgres

    if not on_postgres():
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...): row locks")
    agent = services.create_agent(account=account, name="Busy", model="m")
    thread = Thread.objects.create(account=account, project=project, agent=agent)
    has_thread, outcome = threading.Event(), {}

    def turn():
        try:
            with transaction.atomic():
                Thread.objects.select_for_update(no_key=True).get(pk=thread.pk)
                has_thread.set()
                with connection.cursor() as cursor:  # until the deletion waits for the thread
                    for _ in range(200):
                        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                        if cursor.fetchone()[0]:
                            break
                        threading.Event().wait(0.05)
                Agent.objects.select_for_update().get(pk=agent.pk)
                outcome["turn"] = "done"
        except OperationalError as exc:
            outcome["turn"] = exc
        finally:
            connection.close()

    worker = threading.Thread(target=turn)
    worker.start()
    assert has_thread.wait(10)
    services.delete_agent(agent=agent)  # raised the deadlock's OperationalError before
    worker.join(30)
    assert not Agent.objects.filter(pk=agent.pk).exists()
    assert Thread.objects.get(pk=thread.pk).agent_id is None  # the history stays
    assert outcome["turn"] == "done" or isinstance(outcome["turn"], OperationalError)
