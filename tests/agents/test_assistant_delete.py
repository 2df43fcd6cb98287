"""DELETE /api/assistants/{id}?delete_threads=true: the agent's threads go through the
set-based deletion, in the same queries whatever their number."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import services
from agents.models import Agent
from projects import services as project_services
from projects.models import Project
from sandboxes.models import Sandbox
from threads import services as thread_services
from threads.models import Checkpoint, Message, Run, Thread

pytestmark = pytest.mark.django_db


def agent_with_threads(account, owner, n):
    """An agent with `n` threads: bound ones in one project and tagged ones
    (`metadata.assistant_id`) each alone in its own project, with messages, runs and
    checkpoints; and one unrelated thread in the first project."""
    agent = services.create_agent(account=account, name="A", model="m")
    shared = project_services.create_project(account=account, name="shared")
    for i in range(n):
        project = shared if i % 2 else project_services.create_project(account=account, name=f"p{i}")
        extra = {"agent": agent} if i % 2 else {"metadata": {"assistant_id": str(agent.pk)}}
        thread = thread_services.create_thread(project=project, created_by=owner, **extra)
        thread_services.post_message(thread=thread, role="user", content=[{"type": "text", "text": "x"}])
        run = thread_services.create_run(thread=thread)
        thread_services.put_checkpoint(thread=thread, checkpoint_id="c", checkpoint={}, run=run)
    unrelated = thread_services.create_thread(project=shared, created_by=owner)
    return agent, shared, unrelated


def with_sandbox(account, name="p0"):
    project = Project.objects.filter(account=account, name=name).order_by("-created_at").first()
    Sandbox.objects.create(project=project, provider="local", external_id=f"x-{project.pk}", state="ready")


def delete_queries(api, agent):
    with CaptureQueriesContext(connection) as ctx:
        response = api.delete(f"/api/assistants/{agent.pk}?delete_threads=true")
    assert response.status_code == 204, response.content
    return len(ctx.captured_queries)


def test_delete_threads_removes_every_thread_of_the_agent_in_constant_queries(api, account, owner):
    small, _, _ = agent_with_threads(account, owner, 2)
    with_sandbox(account)
    few = delete_queries(api, small)
    agent, shared, unrelated = agent_with_threads(account, owner, 30)
    with_sandbox(account)
    many = delete_queries(api, agent)
    assert many == few, (few, many)
    assert not Agent.objects.filter(pk=agent.pk).exists()
    assert Thread.objects.filter(pk=unrelated.pk).exists()
    assert Thread.objects.count() == 2  # the two unrelated threads (one per agent_with_threads)
    assert Run.objects.count() == 0 and Checkpoint.objects.count() == 0 and Message.objects.count() == 0
    assert not Project.objects.filter(name__startswith="p").exists()  # emptied projects went too
    assert Project.objects.filter(pk=shared.pk).exists()  # the unrelated thread keeps it
    assert set(Sandbox.objects.values_list("state", flat=True)) <= {"pending_deletion", "deleted"}


def test_protected_agents_are_refused_whatever_the_flag(api, account):
    default = services.create_agent(account=account, name="D", model="m", is_default=True)
    system = services.create_agent(account=account, name="S", model="m")
    Agent.objects.filter(pk=system.pk).update(metadata={"is_system": True})
    for agent in (default, system):
        response = api.delete(f"/api/assistants/{agent.pk}?delete_threads=true")
        assert response.status_code == 400 and response.json()["detail"]
        assert Agent.objects.filter(pk=agent.pk).exists()


def test_a_viewer_cannot_delete_or_copy(account, member_of, project, owner):
    from tests.conftest import client_for

    viewer = client_for(member_of(account, role="viewer"))
    agent = services.create_agent(account=account, name="A", model="m")
    assert viewer.delete(f"/api/assistants/{agent.pk}").status_code == 403
    thread = thread_services.create_thread(project=project, created_by=owner)
    assert viewer.post(f"/api/threads/{thread.pk}/copy").status_code == 403
    assert viewer.post("/api/threads", {}, format="json").status_code == 403  # no writable account
    assert viewer.get(f"/api/threads/{thread.pk}/state").status_code == 200
