"""The agent-thread status machine, every state against every action: the status code,
the resulting status and, on success, the whole detail shape."""

import pytest

from threads import services
from threads.models import Approval, Run, Thread

from .test_agent_threads import agent, base, check_detail, create  # noqa: F401  (agent: a fixture)

pytestmark = pytest.mark.django_db

MESSAGE = {"role": "user", "content": [{"type": "text", "text": "hi"}]}


@pytest.fixture
def thread_in(api, agent, project, django_capture_on_commit_callbacks):  # noqa: F811
    """A thread of `agent` put in `status` through the real services."""

    def make(status):
        thread = Thread.objects.get(pk=create(api, agent, project)["id"])
        if status == "running":  # the run is created; its execution (on commit) never happens here
            services.start_turn(thread=thread, message="work")
        elif status == "awaiting":  # the echo runtime pauses on an approval
            with django_capture_on_commit_callbacks(execute=True):
                services.start_turn(thread=thread, message="approve: sandbox.exec")
        elif status == "closed":
            services.close_thread(thread=thread)
        thread.refresh_from_db()
        assert thread.status == status
        return thread

    return make


# (status, action) -> (HTTP status, the thread's status afterwards)
TRANSITIONS = {
    ("idle", "turn"): (201, "running"),
    ("idle", "cancel"): (200, "idle"),
    ("idle", "close"): (200, "closed"),
    ("running", "turn"): (409, "running"),
    ("running", "cancel"): (200, "idle"),
    ("running", "close"): (409, "running"),
    ("awaiting", "turn"): (409, "awaiting"),
    ("awaiting", "cancel"): (200, "idle"),
    ("awaiting", "close"): (409, "awaiting"),
    ("closed", "turn"): (409, "closed"),
    ("closed", "cancel"): (409, "closed"),
    ("closed", "close"): (409, "closed"),
}


@pytest.mark.parametrize(("status", "action"), list(TRANSITIONS))
def test_transition(api, agent, thread_in, status, action):  # noqa: F811
    thread = thread_in(status)
    body = {"message": "next"} if action == "turn" else None
    r = api.post(base(agent, thread.pk, "turns" if action == "turn" else action), body, format="json")
    code, after = TRANSITIONS[(status, action)]
    assert r.status_code == code, r.content
    thread.refresh_from_db()
    assert thread.status == after
    if code < 300:
        check_detail(r.json())
        assert r.json()["status"] == after
    else:
        detail = r.json()["detail"]
        assert ("closed" in detail) if status == "closed" else ("cancel" in detail or "wait" in detail), detail


@pytest.mark.parametrize("status", ["running", "awaiting"])
def test_cancel_interrupts_the_turn_and_cancels_its_approvals(api, agent, thread_in, status):  # noqa: F811
    thread = thread_in(status)
    body = api.post(base(agent, thread.pk, "cancel")).json()
    assert body["status"] == "idle" and body["lastTurnStatus"] == "failed" and body["activeTurnModel"] is None
    assert list(Run.objects.filter(thread=thread).values_list("status", flat=True)) == ["interrupted"]
    assert not Approval.objects.filter(thread=thread, status="pending").exists()


@pytest.mark.parametrize(("status", "message_code", "run_code"), [
    ("idle", 201, 201), ("running", 201, 409), ("awaiting", 201, 409), ("closed", 409, 409),
])
def test_messages_and_runs_by_status(api, thread_in, status, message_code, run_code):
    """A run without `input` on a thread waiting on an approval is a 409 (decide it);
    new input would end the paused run (tests/threads/test_run_options.py)."""
    thread = thread_in(status)
    assert api.post(f"/api/threads/{thread.pk}/messages", MESSAGE, format="json").status_code == message_code
    reject = {"multitask_strategy": "reject"}
    assert api.post(f"/api/threads/{thread.pk}/runs", reject, format="json").status_code == run_code
    thread.refresh_from_db()
    assert thread.status == ("running" if status == "idle" else status)
    if status == "awaiting":
        assert Approval.objects.filter(thread=thread, status="pending").exists()


def test_create_with_a_message_starts_a_turn(api, agent, project):  # noqa: F811
    body = create(api, agent, project, message="first words")  # the run's execution (on commit) is not run
    check_detail(body)
    assert body["status"] == "running" and body["message"] == "first words"
    assert body["activeTurnModel"] == "echo-1" and body["lastTurnStatus"] is None
    assert [m["content"] for m in body["messages"]] == [[{"type": "text", "text": "first words"}]]
    (turn,) = body["turns"]
    assert turn["startMessageSeq"] == 1 and turn["endMessageSeq"] is None and turn["completedAt"] is None


def test_create_with_an_unknown_tool_creates_nothing(api, agent, project):  # noqa: F811
    r = api.post(base(agent), {"projectId": str(project.pk), "tools": ["get_time", "rm.rf"], "message": "x"},
                 format="json")
    assert r.status_code == 422 and r.json()["errors"]["tools"] == ["Unknown tool 'rm.rf'."]
    assert not Thread.objects.exists() and not Run.objects.exists()


def test_turn_completes_then_idle(api, agent, thread_in, django_capture_on_commit_callbacks):  # noqa: F811
    thread = thread_in("idle")
    with django_capture_on_commit_callbacks(execute=True):
        api.post(base(agent, thread.pk, "turns"), {"message": "count the words"}, format="json")
    body = api.get(base(agent, thread.pk)).json()
    assert body["status"] == "idle" and body["lastTurnStatus"] == "completed" and body["activeTurnModel"] is None
    (turn,) = body["turns"]
    assert turn["result"] == "Echo: count the words" and turn["error"] is None and turn["message"] == "count the words"
    assert turn["tokenUsage"] == {"inputTokens": 3, "outputTokens": 4}
    assert (turn["startMessageSeq"], turn["endMessageSeq"]) == (1, 2) and turn["completedAt"]


def test_awaiting_then_approved_resumes_denied_ends(api, agent, thread_in, django_capture_on_commit_callbacks):  # noqa: F811
    for decision, answer in (("approve", "Tool call sandbox.exec was approved."),
                             ("deny", "Tool call sandbox.exec was denied.")):
        thread = thread_in("awaiting")
        approval = Approval.objects.get(thread=thread)
        with django_capture_on_commit_callbacks(execute=True):
            r = api.post(base(agent, thread.pk, "approvals", approval.pk), {"decision": decision}, format="json")
        assert r.status_code == 200
        body = api.get(base(agent, thread.pk)).json()
        assert body["status"] == "idle" and body["lastTurnStatus"] == "completed"
        assert body["turns"][0]["result"] == answer
        approval.refresh_from_db()
        assert approval.status == {"approve": "approved", "deny": "denied"}[decision] and approval.decided_at
        again = api.post(base(agent, thread.pk, "approvals", approval.pk), {"decision": decision}, format="json")
        assert again.status_code == 409


def test_an_approval_of_another_thread_is_404(api, agent, thread_in):  # noqa: F811
    waiting, other = thread_in("awaiting"), thread_in("idle")
    approval = Approval.objects.get(thread=waiting)
    r = api.post(base(agent, other.pk, "approvals", approval.pk), {"decision": "approve"}, format="json")
    assert r.status_code == 404
    assert api.post(base(agent, other.pk, "approvals", "nope"), {"decision": "approve"}, format="json").status_code == 422
    approval.refresh_from_db()
    assert approval.status == "pending"
