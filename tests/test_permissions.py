"""Who may do what, for every endpoint of the native API:

- reads: any member of the owning account (owner, admin, member, viewer);
- writes: a write role (owner, admin, member) — and, for a thread and what is under
  it (messages, checkpoints, runs), the thread's own creator whatever their role now;
- anonymous: 401; a user of another account: 404 (nothing is revealed).

Each role gets a fresh account with the same objects; the creator is a member who
created the thread and the agent and was then made a viewer.
"""

import pytest

from agents import services as agent_services
from projects import services as project_services
from projects.models import Role
from tests.conftest import client_for
from threads import services as thread_services
from threads.models import Run

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "other", "viewer", "member", "admin", "owner", "creator_viewer"]

# (category, method, path, body); categories: read, thread_write, write
CALLS = [
    ("read", "get", "/api/accounts/{account}", None),
    ("read", "get", "/api/accounts/{account}/usage", None),
    ("read", "get", "/api/projects/{project}", None),
    ("read", "get", "/api/threads/{thread}", None),
    ("read", "get", "/api/threads/{thread}/messages", None),
    ("read", "get", "/api/threads/{thread}/checkpoints", None),
    ("read", "get", "/api/threads/{thread}/state", None),
    ("read", "get", "/api/threads/{thread}/runs", None),
    ("read", "get", "/api/threads/{thread2}/runs/{run}", None),
    ("read", "get", "/api/agents/{agent}", None),
    ("read", "get", "/api/agents/{agent}/versions", None),
    ("read", "get", "/api/agents/{agent}/export", None),
    ("read", "get", "/api/agents/{agent}/triggers", None),
    ("read", "get", "/api/agents/{agent}/threads/{thread}", None),
    ("thread_write", "patch", "/api/threads/{thread}", {"title": "renamed"}),
    ("thread_write", "post", "/api/threads/{thread}/messages", {"role": "user", "content": [{"type": "text", "text": "hi"}]}),
    ("thread_write", "post", "/api/threads/{thread}/checkpoints", {"checkpoint_id": "c-new", "checkpoint": {}}),
    ("thread_write", "post", "/api/threads/{thread}/runs", {}),
    ("thread_write", "post", "/api/threads/{thread}/runs/cancel", {}),
    ("thread_write", "delete", "/api/threads/{thread2}/runs/{run2}", None),
    ("thread_write", "post", "/api/agents/{agent}/threads/{thread}/turns", {"message": "hello"}),
    ("thread_write", "post", "/api/agents/{agent}/threads/{thread3}/close", None),
    ("thread_write", "delete", "/api/threads/{thread4}", None),
    ("write", "post", "/api/projects", {"account_id": "{account}", "name": "new"}),
    ("write", "patch", "/api/projects/{project}", {"description": "changed"}),
    ("write", "post", "/api/projects/{project}/sandbox", None),
    ("write", "delete", "/api/projects/{project2}", None),
    ("write", "post", "/api/threads", {"project_id": "{project}"}),
    ("write", "post", "/api/agents/{agent}/threads", {"projectId": "{project}"}),
    ("write", "post", "/api/agents", {"account_id": "{account}", "name": "new-agent", "model": "echo-1", "system_prompt": ""}),
    ("write", "patch", "/api/agents/{agent}", {"description": "changed"}),
    ("write", "post", "/api/agents/{agent}/triggers", {"kind": "webhook", "project_id": "{project}"}),
    ("write", "delete", "/api/agents/{agent}/triggers/{trigger}", None),
    ("write", "delete", "/api/agents/{agent2}", None),
]


def expected(category: str, role: str) -> set:
    if role == "anonymous":
        return {401}
    if role == "other":
        return {404}
    if category == "read":
        return {200}
    if role == "viewer" or (role == "creator_viewer" and category == "write"):
        return {403}
    return {200, 201}


def world(make_user, role):
    owner = make_user()
    account = project_services.create_account(name="World", owner=owner)
    project = project_services.create_project(account=account, name="p")
    project2 = project_services.create_project(account=account, name="p2")
    thread_services.create_thread(project=project2)
    creator = make_user()
    project_services.add_member(account=account, user=creator, role=Role.MEMBER)
    agent = agent_services.create_agent(account=account, name="a", model="echo-1", created_by=creator)
    agent2 = agent_services.create_agent(account=account, name="a2", model="echo-1", created_by=creator)
    threads = [thread_services.create_thread(project=project, agent=agent, created_by=creator) for _ in range(4)]
    run2 = Run.objects.create(thread=threads[1], seq=1, status="success")
    trigger, _ = agent_services.create_trigger(agent=agent, kind="webhook", project=project)
    project_services.add_member(account=account, user=creator, role=Role.VIEWER)
    ids = {"account": account.pk, "project": project.pk, "project2": project2.pk, "agent": agent.pk,
           "agent2": agent2.pk, "thread": threads[0].pk, "thread2": threads[1].pk, "thread3": threads[2].pk,
           "thread4": threads[3].pk, "run": run2.pk, "run2": run2.pk, "trigger": trigger.pk}
    if role == "anonymous":
        user = None
    elif role == "other":
        user = make_user()
        project_services.create_account(name="Elsewhere", owner=user)
    elif role == "creator_viewer":
        user = creator
    elif role == "owner":
        user = owner
    else:
        user = make_user()
        project_services.add_member(account=account, user=user, role=role)
    return client_for(user), ids


def fill(value, ids):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(make_user, role):
    client, ids = world(make_user, role)
    wrong = []
    for category, method, path, body in CALLS:
        url = path.format(**ids)
        response = getattr(client, method)(url, fill(body, ids), format="json") if body is not None \
            else getattr(client, method)(url)
        if response.status_code not in expected(category, role):
            wrong.append((method.upper(), path, response.status_code, response.content[:200]))
        if response.status_code >= 400:
            assert isinstance(response.json()["detail"], str)
    assert not wrong, wrong


@pytest.mark.parametrize("role, pruned", [("viewer", 0), ("other", 0), ("member", 1), ("creator_viewer", 1)])
def test_prune_counts_only_threads_the_caller_may_write(make_user, role, pruned):
    client, ids = world(make_user, role)
    response = client.post("/api/threads/prune", {"thread_ids": [str(ids["thread4"])]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"pruned_count": pruned}
