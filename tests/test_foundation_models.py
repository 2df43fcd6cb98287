"""The data model's invariants live in the database: constraints and ON DELETE."""

import uuid

import pytest
from django.db import IntegrityError, connection, transaction

from agents.models import Agent, AgentTrigger, AgentVersion
from sandboxes.models import Sandbox
from threads.models import Approval, Checkpoint, CheckpointWrite, Message, Run, Thread

pytestmark = pytest.mark.django_db


def make_thread(project, **kw):
    return Thread.objects.create(account=project.account, project=project, **kw)


def fill(thread, agent=None, n=3):
    runs = [Run.objects.create(thread=thread, seq=i + 1, status="success", agent=agent) for i in range(n)]
    for i in range(n):
        Message.objects.create(thread=thread, seq=i + 1, role="user", content=[{"type": "text", "text": "hi"}],
                               run=runs[i], agent=agent)
        cp = Checkpoint.objects.create(thread=thread, checkpoint_id=f"c{i}", run=runs[i])
        CheckpointWrite.for_checkpoint(cp, task_id="t", idx=0, channel="x").save()
    Approval.objects.create(thread=thread, run=runs[0])
    return runs


def test_unique_message_seq_per_thread(project):
    thread = make_thread(project)
    Message.objects.create(thread=thread, seq=1, role="user")
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(thread=thread, seq=1, role="user")
    Message.objects.create(thread=make_thread(project), seq=1, role="user")  # other thread: fine


def test_unique_run_seq_and_one_running_run(project):
    thread = make_thread(project)
    Run.objects.create(thread=thread, seq=1, status="running")
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(thread=thread, seq=1, status="success")
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(thread=thread, seq=2, status="running")
    Run.objects.create(thread=thread, seq=2, status="pending")  # queued behind the running one
    Run.objects.create(thread=thread, seq=3, status="success")


def test_one_default_agent_per_account(account, other_account):
    Agent.objects.create(account=account, name="a", is_default=True)
    Agent.objects.create(account=account, name="b", is_default=False)
    Agent.objects.create(account=other_account, name="c", is_default=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Agent.objects.create(account=account, name="d", is_default=True)


def test_one_sandbox_per_project(project):
    Sandbox.objects.create(project=project, account=project.account, provider="local")
    with pytest.raises(IntegrityError), transaction.atomic():
        Sandbox.objects.create(project=project, account=project.account, provider="local")


def test_raw_sql_delete_of_a_thread_leaves_no_child_rows(project):
    thread = make_thread(project)
    child = make_thread(project, parent_thread=thread, depth=1)
    grandchild = make_thread(project, parent_thread=child, depth=2)
    for t in (thread, child, grandchild):
        fill(t)
    other = make_thread(project)
    fill(other)
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {Thread._meta.db_table} WHERE id = %s", [thread.pk.hex if connection.vendor == "sqlite" else thread.pk])
    ids = [thread.pk, child.pk, grandchild.pk]
    assert not Thread.objects.filter(pk__in=ids).exists()
    for model in (Message, Run, Checkpoint, Approval):
        assert not model.objects.filter(thread_id__in=ids).exists(), model.__name__
    assert CheckpointWrite.objects.count() == 3  # only the other thread's
    assert Message.objects.filter(thread=other).count() == 3


def test_deleting_a_run_removes_its_checkpoints_and_keeps_messages(project):
    thread = make_thread(project)
    runs = fill(thread)
    runs[0].delete()
    assert Message.objects.filter(thread=thread).count() == 3
    assert Message.objects.get(seq=1).run_id is None
    assert not Checkpoint.objects.filter(run_id=runs[0].pk).exists()
    assert Checkpoint.objects.filter(thread=thread).count() == 2


def test_deleting_an_agent_keeps_history_with_agent_null(project):
    agent = Agent.objects.create(account=project.account, name="a")
    AgentVersion.objects.create(agent=agent, number=1, model="m")
    AgentTrigger.objects.create(agent=agent, kind="webhook")
    thread = make_thread(project, agent=agent)
    fill(thread, agent=agent)
    agent.delete()
    thread.refresh_from_db()
    assert thread.agent_id is None
    assert Run.objects.filter(thread=thread, agent__isnull=True).count() == 3
    assert Message.objects.filter(thread=thread, agent__isnull=True).count() == 3
    assert not AgentVersion.objects.exists() and not AgentTrigger.objects.exists()


def test_deleting_a_project_keeps_its_sandbox_row(project):
    sandbox = Sandbox.objects.create(project=project, account=project.account, provider="local")
    make_thread(project)
    project.delete()
    sandbox.refresh_from_db()
    assert sandbox.project_id is None
    assert not Thread.objects.exists()


def test_deleting_a_user_forgets_soft_references(project, make_user):
    from projects.services import add_member

    user = make_user("leaver")
    add_member(account=project.account, user=user, role="member")
    thread = make_thread(project, created_by=user)
    user.delete()
    thread.refresh_from_db()
    assert thread.created_by_id is None
    assert not project.account.memberships.filter(user_id=user.pk).exists()


def test_uuid_ids(project):
    assert isinstance(make_thread(project).pk, uuid.UUID)
