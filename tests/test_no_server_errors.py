"""No bad input gives a 500: every API route, with real, unknown and malformed ids,
answers every method with odd bodies and odd query strings with a 4xx (or a 2xx) and
a JSON `detail` on errors."""

import uuid

import pytest

from agents import services as agent_services
from threads import services as thread_services
from threads.models import Approval, Run

pytestmark = pytest.mark.django_db

ROUTES = [
    "/api/accounts", "/api/accounts/{account}", "/api/accounts/{account}/usage",
    "/api/projects", "/api/projects/{project}", "/api/projects/{project}/sandbox",
    "/api/threads", "/api/threads/{thread}", "/api/threads/search", "/api/threads/prune",
    "/api/threads/{thread}/messages", "/api/threads/{thread}/checkpoints", "/api/threads/{thread}/state",
    "/api/threads/{thread}/runs", "/api/threads/{thread}/runs/cancel", "/api/threads/{thread}/runs/{run}",
    "/api/threads/{thread}/runs/{run}/cancel",
    "/api/agents", "/api/agents/import", "/api/agents/{agent}", "/api/agents/{agent}/versions",
    "/api/agents/{agent}/export", "/api/agents/{agent}/triggers", "/api/agents/{agent}/triggers/{trigger}",
    "/api/webhooks/{trigger}/not-the-secret",
    "/api/agents/{agent}/threads", "/api/agents/{agent}/threads/{thread}",
    "/api/agents/{agent}/threads/{thread}/turns", "/api/agents/{agent}/threads/{thread}/cancel",
    "/api/agents/{agent}/threads/{thread}/close", "/api/agents/{agent}/threads/{thread}/approvals/{approval}",
]
BODIES = [None, {}, [], "text", 7, {"thread_ids": [1, None]}, {"status": ["x"]}, {"message": {"a": 1}},
          {"role": "user", "content": [{"type": 1}]}, {"checkpoint_id": "", "checkpoint": []},
          {"kind": "schedule", "cron": "61 * * * *", "project_id": "x"}, {"projectId": 5, "tools": "all"},
          {"decision": None}, {"account_id": str(uuid.uuid4()), "name": "x" * 500, "model": ""},
          {"document": {"name": "x", "versions": [{"model": None}]}, "account_id": "nope"},
          {"name": "nul\u0000byte", "title": "a\u0000", "metadata": {"k": "\u0000"}, "message": "x\u0000",
           "role": "user", "content": [{"type": "text", "text": "\u0000"}]}]
QUERIES = ["", "?limit=-1", "?limit=abc", "?after_seq=x&status=zzz", "?afterSeq=1&beforeSeq=2",
           "?action=explode&force=perhaps", "?q=&project_id=nope", "?cursor=%00", "?checkpoint_ns=%ff",
           "?checkpoint_ns=%00&q=%00&status=%00&account_id=%00"]


@pytest.fixture
def ids(account, project, owner):
    agent = agent_services.create_agent(account=account, name="a", model="m")
    thread = thread_services.create_thread(project=project, agent=agent, created_by=owner)
    run = Run.objects.create(thread=thread, seq=1, status="success")
    trigger, _ = agent_services.create_trigger(agent=agent, kind="webhook", project=project)
    approval = Approval.objects.create(thread=thread, run=run)
    return {"account": account.pk, "project": project.pk, "thread": thread.pk, "run": run.pk, "agent": agent.pk,
            "trigger": trigger.pk, "approval": approval.pk}


@pytest.mark.parametrize("route", ROUTES)
def test_no_route_answers_500(api, ids, route):
    variants = [ids, {k: uuid.uuid4() for k in ids}, {k: "not-a-uuid" for k in ids}]
    for values in variants:
        path = route.format(**values)
        calls = [(m, q, None) for m in ("get", "delete") for q in QUERIES]
        calls += [(m, "", b) for m in ("post", "patch", "put") for b in BODIES]
        calls += [(m, q, {}) for m in ("post", "patch") for q in QUERIES[1:]]
        for method, query, body in calls:
            call = getattr(api, method)
            r = call(path + query, body, format="json") if body is not None else call(path + query)
            assert r.status_code < 500, (method, path + query, body, r.status_code, r.content[:300])
            if r.status_code >= 400:
                assert isinstance(r.json().get("detail"), str), (method, path, r.content[:200])
