"""The agent-thread API: the detail shape, the status machine, turns, approvals, close."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from agents import services as agent_services
from projects.models import Role
from tests.conftest import client_for
from threads import services
from threads.detail import build_detail, with_agent_prompt
from threads.services.messages import compact_thread
from threads.models import Approval, Message, Run, Thread

pytestmark = pytest.mark.django_db

STR, INT, BOOL, LIST, DICT, NULL = str, int, bool, list, dict, type(None)
DETAIL_SCHEMA = {
    "id": (STR,), "agentId": (STR, NULL), "status": (STR,), "depth": (INT,), "parentThreadId": (STR, NULL),
    "scheduleId": (STR, NULL), "scheduleSeq": (INT, NULL), "instructions": (STR, NULL), "model": (STR,),
    "result": (STR, NULL), "error": (STR, NULL), "createdAt": (STR,), "updatedAt": (STR,), "completedAt": (STR, NULL),
    "message": (STR, NULL), "lastTurnStatus": (STR, NULL), "activeTurnModel": (STR, NULL), "tools": (LIST,),
    "externalToolNamespaces": (LIST,), "compactionSummary": (STR, NULL), "compactionThroughSeq": (INT, NULL),
    "composedSystemPrompt": (STR, NULL), "compiledContext": (DICT, NULL), "contextWindow": (DICT,),
    "messages": (LIST,), "messageCursor": (INT, NULL), "hasMoreMessages": (BOOL,), "turns": (LIST,),
    "turnCursor": (INT, NULL), "hasMoreTurns": (BOOL,), "subThreads": (LIST,),
}
CONTEXT_WINDOW = {"compacted": (BOOL,), "compactionThroughSeq": (INT, NULL), "contextWindowTokens": (INT,),
                  "llmEstimatedTokens": (INT,), "model": (STR, NULL), "rawEstimatedTokens": (INT,)}
COMPILED = {"enabledTools": (LIST,), "systemPrompt": (STR, NULL), "turnId": (STR, NULL)}
MESSAGE = {"seq": (INT,), "content": (LIST,), "createdAt": (STR,)}
TURN = {"id": (STR,), "threadId": (STR,), "seq": (INT,), "startMessageSeq": (INT, NULL), "endMessageSeq": (INT, NULL),
        "startedAt": (STR, NULL), "completedAt": (STR, NULL), "result": (STR, NULL), "error": (STR, NULL),
        "message": (STR, NULL), "tokenUsage": (DICT,)}
SUB = {"id": (STR,), "parentThreadId": (STR,), "toolUseId": (STR, NULL), "messageCount": (INT,), "stepCount": (INT,),
       "model": (STR, NULL), "result": (STR, NULL), "scheduleId": (STR, NULL), "scheduleSeq": (INT, NULL),
       "createdAt": (STR,), "completedAt": (STR, NULL)}


def check(obj, schema, where):
    assert set(obj) == set(schema), f"{where}: fields {set(obj) ^ set(schema)}"
    for key, types in schema.items():
        assert isinstance(obj[key], types) and not (bool in map(type, [obj[key]]) and INT in types and BOOL not in types), \
            f"{where}.{key} = {obj[key]!r}, expected {types}"


def check_detail(body):
    check(body, DETAIL_SCHEMA, "detail")
    assert body["status"] in ("idle", "running", "awaiting", "closed")
    assert body["lastTurnStatus"] in (None, "completed", "failed")
    check(body["contextWindow"], CONTEXT_WINDOW, "contextWindow")
    if body["compiledContext"] is not None:
        check(body["compiledContext"], COMPILED, "compiledContext")
    for m in body["messages"]:
        check(m, MESSAGE, "messages[]")
        for block in m["content"]:
            assert set(block) == {"type", "text"}
    for t in body["turns"]:
        check(t, TURN, "turns[]")
        check(t["tokenUsage"], {"inputTokens": (INT,), "outputTokens": (INT,)}, "tokenUsage")
    for s in body["subThreads"]:
        check(s, SUB, "subThreads[]")


@pytest.fixture
def agent(account):
    return agent_services.create_agent(account=account, name="Cerca", system_prompt="You are Cerca.", model="echo-1")


def base(agent, thread=None, *rest):
    path = f"/api/agents/{agent.pk}/threads"
    return "/".join([path, *([str(thread)] if thread else []), *map(str, rest)])


def create(api, agent, project, **kw):
    r = api.post(base(agent), {"projectId": str(project.pk)} | kw, format="json")
    assert r.status_code == 201, r.content
    return r.json()


# --- shape ------------------------------------------------------------------------------


def test_detail_shape_of_a_new_thread(api, agent, project):
    body = create(api, agent, project, instructions="Be brief.", tools=["get_time", "web.search"])
    check_detail(body)
    assert body["status"] == "idle" and body["agentId"] == str(agent.pk) and body["depth"] == 0
    assert body["tools"] == ["get_time", "web.search"] and body["messages"] == [] and body["turns"] == []
    assert body["composedSystemPrompt"] is None and body["compiledContext"] is None
    assert body["contextWindow"] == {"compacted": False, "compactionThroughSeq": None, "contextWindowTokens": 8192,
                                     "llmEstimatedTokens": 0, "model": "echo-1", "rawEstimatedTokens": 0}


def test_detail_shape_with_everything(api, agent, project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = create(api, agent, project, message="hello there", instructions="Be brief.")
    thread = Thread.objects.get(pk=body["id"])
    child = services.create_thread(project=project, agent=agent, parent_thread=thread, tool_use_id="tu_1")
    Message.objects.create(thread=child, seq=1, role="user", content=[{"type": "text", "text": "x"}])
    compact_thread(thread=thread, through_seq=1, summary="summary words")
    body = api.get(base(agent, thread.pk), {"debug": "true"}).json()
    check_detail(body)
    assert body["status"] == "idle" and body["lastTurnStatus"] == "completed"
    assert [m["seq"] for m in body["messages"]] == [1, 2]
    assert body["messages"][1]["content"] == [{"type": "text", "text": "Echo: hello there"}]
    assert body["turns"][0]["startMessageSeq"] == 1 and body["turns"][0]["endMessageSeq"] == 2
    assert body["composedSystemPrompt"] == "You are Cerca.\n\nBe brief."
    assert body["compiledContext"]["turnId"] == body["turns"][0]["id"]
    assert body["contextWindow"]["compacted"] is True
    assert body["contextWindow"]["llmEstimatedTokens"] < body["contextWindow"]["rawEstimatedTokens"] + 2
    assert body["subThreads"][0] | {"createdAt": None} == {
        "id": str(child.pk), "parentThreadId": str(thread.pk), "toolUseId": "tu_1", "messageCount": 1,
        "stepCount": 0, "model": "echo-1", "result": None, "scheduleId": None, "scheduleSeq": None,
        "createdAt": None, "completedAt": None}


def test_bad_inputs_are_422(api, agent, project):
    assert api.post(base(agent), {"projectId": str(project.pk), "tools": ["rm.rf"]}, format="json").status_code == 422
    assert api.post(base(agent), {}, format="json").status_code == 422
    thread = create(api, agent, project)["id"]
    assert api.get(base(agent, thread), {"afterSeq": 1, "beforeSeq": 3}).status_code == 422
    assert api.get(base(agent, thread), {"limit": 501}).status_code == 422
    assert api.get(base(agent, thread), {"limit": -1}).status_code == 422
    assert api.get(base(agent, "nope")).status_code == 422
    assert api.get("/api/agents/nope/threads").status_code == 422
    assert api.post(base(agent, thread, "turns"), {}, format="json").status_code == 422


def test_agent_of_another_account_is_404(agent, project, other_account):
    stranger = client_for(other_account.memberships.get().user)
    assert stranger.get(base(agent)).status_code == 404
    assert stranger.post(base(agent), {"projectId": str(project.pk)}, format="json").status_code == 404


def test_message_paging(api, agent, project):
    thread = Thread.objects.get(pk=create(api, agent, project)["id"])
    Message.objects.bulk_create(Message(thread=thread, seq=i + 1, role="user", content=[{"type": "text", "text": "w"}])
                                for i in range(10))
    body = api.get(base(agent, thread.pk), {"limit": 4}).json()
    assert [m["seq"] for m in body["messages"]] == [7, 8, 9, 10] and body["hasMoreMessages"] and body["messageCursor"] == 7
    body = api.get(base(agent, thread.pk), {"limit": 4, "beforeSeq": 7}).json()
    assert [m["seq"] for m in body["messages"]] == [3, 4, 5, 6] and body["messageCursor"] == 3
    body = api.get(base(agent, thread.pk), {"limit": 4, "afterSeq": 8}).json()
    assert [m["seq"] for m in body["messages"]] == [9, 10] and not body["hasMoreMessages"]
    body = api.get(base(agent, thread.pk), {"limit": 0}).json()
    assert body["messages"] == [] and body["hasMoreMessages"] is True and body["messageCursor"] is None


def test_list_with_status_filter_and_cursor(api, agent, project):
    ids = [create(api, agent, project)["id"] for _ in range(5)]
    services.close_thread(thread=Thread.objects.get(pk=ids[0]))
    page = api.get(base(agent), {"limit": 2}).json()
    assert len(page["threads"]) == 2 and page["hasMore"]
    seen = [t["id"] for t in page["threads"]]
    while page["hasMore"]:
        page = api.get(base(agent), {"limit": 2, "cursor": page["nextCursor"]}).json()
        seen += [t["id"] for t in page["threads"]]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    closed = api.get(base(agent), {"status": "closed"}).json()["threads"]
    assert [t["id"] for t in closed] == [ids[0]]
    assert api.get(base(agent), {"status": "nope"}).status_code == 422
    bad = api.get(base(agent), {"cursor": "not-a-uuid"})
    assert bad.status_code == 422 and "cursor" in bad.json()["errors"]
    gone = api.get(base(agent), {"cursor": "00000000-0000-0000-0000-000000000000"})
    assert gone.status_code == 422 and gone.json()["detail"] == "Unknown cursor."


# --- the status machine -----------------------------------------------------------------


def test_turn_runs_then_idle_and_409_unless_idle(api, agent, project, django_capture_on_commit_callbacks):
    thread = create(api, agent, project)["id"]
    r = api.post(base(agent, thread, "turns"), {"message": "one"}, format="json")  # not executed: no commit
    assert r.status_code == 201 and r.json()["status"] == "running" and r.json()["activeTurnModel"] == "echo-1"
    assert api.post(base(agent, thread, "turns"), {"message": "two"}, format="json").status_code == 409
    assert api.post(base(agent, thread, "close")).status_code == 409
    assert "cancel" in api.post(base(agent, thread, "close")).json()["detail"]
    r = api.post(base(agent, thread, "cancel"))
    assert r.status_code == 200 and r.json()["status"] == "idle"
    assert Run.objects.get(thread_id=thread).status == "interrupted"
    assert api.post(base(agent, thread, "cancel")).json()["status"] == "idle"  # idempotent
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(base(agent, thread, "turns"), {"message": "fail: no luck"}, format="json")
    body = api.get(base(agent, thread)).json()
    assert body["status"] == "idle" and body["lastTurnStatus"] == "failed"
    with django_capture_on_commit_callbacks(execute=True):
        api.post(base(agent, thread, "turns"), {"message": "ok"}, format="json")
    assert api.get(base(agent, thread)).json()["lastTurnStatus"] == "completed"


def test_a_run_started_through_another_api_shows_what_it_was_asked(
        api, agent, project, django_capture_on_commit_callbacks):
    """A turn's `message` is its user's text whichever API started it: a run given
    input messages (the REST or LangGraph runs API) is asked its last user message."""
    thread = create(api, agent, project)["id"]
    native = {"messages": [{"role": "user", "content": "native q"}, {"role": "assistant", "content": "noted"},
                           {"type": "human", "content": [{"type": "text", "text": "and then?"}]}]}
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(f"/api/threads/{thread}/runs", {"input": native}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["message"] == "and then?"
    body = api.get(base(agent, thread)).json()
    assert body["message"] == "and then?" and body["lastTurnStatus"] == "completed"
    assert [t["message"] for t in body["turns"]] == ["and then?"]
    assert body["turns"][0]["startMessageSeq"] == 1 and body["turns"][0]["endMessageSeq"] == 4
    with django_capture_on_commit_callbacks(execute=True):  # no user message in the input: nothing was asked
        api.post(f"/api/threads/{thread}/runs", {"input": {"messages": [{"role": "system", "content": "s"}]}},
                 format="json")
    assert api.get(base(agent, thread)).json()["message"] is None


def test_approval_pause_approve_deny_cancel_and_timeout(api, agent, project, django_capture_on_commit_callbacks):
    thread = create(api, agent, project)["id"]
    with django_capture_on_commit_callbacks(execute=True):
        api.post(base(agent, thread, "turns"), {"message": "approve: sandbox.exec"}, format="json")
    assert api.get(base(agent, thread)).json()["status"] == "awaiting"
    approval = Approval.objects.get(thread_id=thread)
    assert api.post(base(agent, thread, "turns"), {"message": "x"}, format="json").status_code == 409
    r = api.post(base(agent, thread, "close"))
    assert r.status_code == 409 and "cancel" in r.json()["detail"]  # awaiting does not close
    assert api.post(base(agent, thread, "approvals", approval.pk), {"decision": "maybe"}, format="json").status_code == 422
    assert api.post(base(agent, thread, "approvals", uuid.uuid4()), {"decision": "approve"}, format="json").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(base(agent, thread, "approvals", approval.pk), {"decision": "approve"}, format="json")
    assert r.status_code == 200
    body = api.get(base(agent, thread)).json()
    assert body["status"] == "idle" and body["lastTurnStatus"] == "completed"
    assert body["messages"][-1]["content"][0]["text"] == "Tool call sandbox.exec was approved."
    assert api.post(base(agent, thread, "approvals", approval.pk), {"decision": "deny"}, format="json").status_code == 409

    with django_capture_on_commit_callbacks(execute=True):
        api.post(base(agent, thread, "turns"), {"message": "approve: web.fetch"}, format="json")
    second = Approval.objects.get(thread_id=thread, status="pending")
    with django_capture_on_commit_callbacks(execute=True):
        api.post(base(agent, thread, "approvals", second.pk), {"decision": "deny"}, format="json")
    assert Run.objects.get(pk=second.run_id).result == "Tool call web.fetch was denied."

    with django_capture_on_commit_callbacks(execute=True):
        api.post(base(agent, thread, "turns"), {"message": "approve: db.query"}, format="json")
    third = Approval.objects.get(thread_id=thread, status="pending")
    assert api.post(base(agent, thread, "cancel")).json()["status"] == "idle"
    third.refresh_from_db()
    assert third.status == "cancelled"

    with django_capture_on_commit_callbacks(execute=True):
        api.post(base(agent, thread, "turns"), {"message": "approve: memory.write"}, format="json")
    fourth = Approval.objects.get(thread_id=thread, status="pending")
    assert services.expire_approvals(now=timezone.now()) == 0
    assert services.expire_approvals(now=fourth.expires_at + timedelta(seconds=1)) == 1
    fourth.refresh_from_db()
    assert fourth.status == "timed_out" and Run.objects.get(pk=fourth.run_id).status == "timeout"
    body = api.get(base(agent, thread)).json()
    assert body["status"] == "idle" and body["lastTurnStatus"] == "failed"


def test_close_idle_with_sub_threads_and_closed_refuses_work(api, agent, project):
    thread = Thread.objects.get(pk=create(api, agent, project)["id"])
    child = services.create_thread(project=project, agent=agent, parent_thread=thread)
    grandchild = services.create_thread(project=project, agent=agent, parent_thread=child)
    r = api.post(base(agent, thread.pk, "close"))
    assert r.status_code == 200
    check_detail(r.json())
    assert r.json()["status"] == "closed" and r.json()["completedAt"]
    assert set(Thread.objects.filter(pk__in=[child.pk, grandchild.pk]).values_list("status", flat=True)) == {"closed"}
    r = api.post(base(agent, thread.pk, "close"))
    assert r.status_code == 409 and "closed" in r.json()["detail"]
    assert api.post(base(agent, thread.pk, "cancel")).status_code == 409
    assert api.post(base(agent, thread.pk, "turns"), {"message": "x"}, format="json").status_code == 409
    assert api.post(f"/api/threads/{thread.pk}/messages", {"role": "user", "content": [{"type": "text", "text": "x"}]},
                    format="json").status_code == 409
    assert api.post(f"/api/threads/{thread.pk}/runs", {}, format="json").status_code == 409
    assert api.get(base(agent, thread.pk)).status_code == 200  # still readable
    assert api.post("/api/threads/prune", {"thread_ids": [str(thread.pk)], "strategy": "keep_latest"},
                    format="json").status_code == 200
    assert api.delete(f"/api/threads/{thread.pk}").status_code == 200  # and deletable


def test_close_with_a_running_sub_thread_is_409_and_changes_nothing(api, agent, project):
    thread = Thread.objects.get(pk=create(api, agent, project)["id"])
    idle_child = services.create_thread(project=project, agent=agent, parent_thread=thread)
    busy_child = services.create_thread(project=project, agent=agent, parent_thread=thread)
    services.create_run(thread=busy_child)
    r = api.post(base(agent, thread.pk, "close"))
    assert r.status_code == 409 and str(busy_child.pk) in r.json()["detail"]
    assert set(Thread.objects.filter(pk__in=[thread.pk, idle_child.pk]).values_list("status", flat=True)) == {"idle"}


def test_viewer_cannot_change_a_thread(api, agent, project, account, member_of):
    thread = create(api, agent, project)["id"]
    viewer = client_for(member_of(account, Role.VIEWER))
    assert viewer.get(base(agent, thread)).status_code == 200
    for action in ("close", "cancel"):
        assert viewer.post(base(agent, thread, action)).status_code == 403
    assert viewer.post(base(agent, thread, "turns"), {"message": "x"}, format="json").status_code == 403


def test_detail_query_count_is_constant(api, agent, project, django_assert_num_queries):
    from django.test.utils import CaptureQueriesContext

    small = Thread.objects.get(pk=create(api, agent, project)["id"])
    Message.objects.create(thread=small, seq=1, role="user", content=[{"type": "text", "text": "x"}])
    with CaptureQueriesContext(connection) as tiny:
        build_detail(with_agent_prompt(Thread.objects.all()).get(pk=small.pk), limit=500)
    tiny_count = len(tiny.captured_queries)  # now: the log is a bounded deque
    big = Thread.objects.get(pk=create(api, agent, project)["id"])
    Message.objects.bulk_create(Message(thread=big, seq=i + 1, role="user", content=[{"type": "text", "text": "m"}],
                                        token_count=1) for i in range(10_000))
    Thread.objects.filter(pk=big.pk).update(message_tokens=10_000)  # what append_messages keeps up to date
    Run.objects.bulk_create(Run(thread=big, seq=i + 1, status="success") for i in range(500))
    children = [Thread(account=big.account, project=project, agent=agent, parent_thread=big, depth=1) for _ in range(50)]
    Thread.objects.bulk_create(children)
    Message.objects.bulk_create(Message(thread=c, seq=1, role="user", content=[]) for c in children)
    with django_assert_num_queries(tiny_count):
        body = build_detail(with_agent_prompt(Thread.objects.all()).get(pk=big.pk), limit=500, turns_limit=500)
    assert tiny_count <= 5  # the thread (annotated), messages, turns, sub-threads
    with CaptureQueriesContext(connection) as tiny_request:  # the whole request: auth, agent, thread, detail
        assert api.get(base(agent, small.pk), {"limit": 500}).status_code == 200
    with django_assert_num_queries(len(tiny_request.captured_queries)):
        assert api.get(base(agent, big.pk), {"limit": 500, "turnsLimit": 500}).json()["messageCursor"] == 9501
    assert len(body["messages"]) == 500 and body["hasMoreMessages"]
    assert len(body["turns"]) == 500 and len(body["subThreads"]) == 50
    assert body["contextWindow"]["rawEstimatedTokens"] == 10_000
    assert all(s["messageCount"] == 1 for s in body["subThreads"])


def test_the_openapi_schema_documents_the_detail_field_for_field(anon):
    components = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["components"]
    schemas = components["schemas"]

    def documented(name, shape):
        schema = schemas[name]
        assert set(schema["properties"]) == set(shape) == set(schema["required"]), name
        nullable = {key for key, prop in schema["properties"].items() if prop.get("nullable")}
        assert nullable == {key for key, types in shape.items() if NULL in types}, name

    documented("AgentThreadDetail", DETAIL_SCHEMA)
    documented("ContextWindow", CONTEXT_WINDOW)
    documented("CompiledContext", COMPILED)
    documented("AgentThreadMessage", MESSAGE)
    documented("AgentThreadTurn", TURN)
    documented("SubThread", SUB)
    assert schemas["ThreadStatusEnum"]["enum"] == ["idle", "running", "awaiting", "closed"]
    assert "agent.schedule.trigger" in schemas["AgentToolEnum"]["enum"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_close_and_turn_at_once_exactly_one_wins(agent, project):
    for _ in range(5):
        thread = services.create_thread(project=project, agent=agent)
        outcomes, barrier = {}, threading.Barrier(2)

        def attempt(name, call):
            try:
                barrier.wait()
                call()
                outcomes[name] = "ok"
            except Exception as exc:
                outcomes[name] = getattr(exc, "status_code", repr(exc))
            finally:
                connection.close()

        workers = [
            threading.Thread(target=attempt, args=("close", lambda: services.close_thread(thread=thread))),
            threading.Thread(target=attempt, args=("turn", lambda: services.start_turn(thread=thread, message="hi"))),
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert sorted(outcomes.values(), key=str) == [409, "ok"], outcomes
        thread.refresh_from_db()
        active = Run.objects.filter(thread=thread, status__in=["pending", "running"]).exists()
        assert not (thread.status == "closed" and active)


def test_turns_are_paged_newest_first_with_a_cursor(api, agent, project):
    thread = Thread.objects.get(pk=create(api, agent, project)["id"])
    Run.objects.bulk_create(Run(thread=thread, seq=i + 1, status="success", message=f"m{i + 1}") for i in range(7))
    Run.objects.create(thread=thread, seq=8, status="error", message="m8")
    body = api.get(base(agent, thread.pk), {"turnsLimit": 3}).json()
    assert [t["seq"] for t in body["turns"]] == [6, 7, 8] and body["hasMoreTurns"] and body["turnCursor"] == 6
    assert body["message"] == "m8" and body["lastTurnStatus"] == "failed" and body["activeTurnModel"] is None
    body = api.get(base(agent, thread.pk), {"turnsLimit": 3, "beforeTurnSeq": 6}).json()
    assert [t["seq"] for t in body["turns"]] == [3, 4, 5] and body["turnCursor"] == 3 and body["hasMoreTurns"]
    assert body["message"] == "m8"  # the thread's facts do not depend on the page
    body = api.get(base(agent, thread.pk), {"turnsLimit": 3, "beforeTurnSeq": 3}).json()
    assert [t["seq"] for t in body["turns"]] == [1, 2] and not body["hasMoreTurns"]
    body = api.get(base(agent, thread.pk), {"turnsLimit": 0}).json()
    assert body["turns"] == [] and body["hasMoreTurns"] is True
    assert api.get(base(agent, thread.pk), {"turnsLimit": 501}).status_code == 422
    assert api.get(base(agent, thread.pk), {"beforeTurnSeq": 0}).status_code == 422


def test_the_detail_reads_the_same_queries_and_no_more_turns_at_5000_than_at_50(api, agent, project):
    from django.test.utils import CaptureQueriesContext

    counts = []
    for n in (50, 5000):
        thread = Thread.objects.get(pk=create(api, agent, project)["id"])
        Run.objects.bulk_create((Run(thread=thread, seq=i + 1, status="success") for i in range(n)), batch_size=1000)
        with CaptureQueriesContext(connection) as queries:
            body = api.get(base(agent, thread.pk)).json()
        counts.append(len(queries))
        assert len(body["turns"]) == 50 and body["turns"][-1]["seq"] == n and body["hasMoreTurns"] == (n > 50)
    assert counts[0] == counts[1]


def test_cursors_beyond_a_seq_column_are_422(api, agent, project):
    """Seqs are 32-bit: a bigger cursor is refused (it reached the database, a 500)."""
    thread = create(api, agent, project)["id"]
    for param in ("afterSeq", "beforeSeq", "beforeTurnSeq"):
        for value in (2**31, 2**63, 10**20):
            r = api.get(base(agent, thread), {param: value})
            assert r.status_code == 422 and param in r.json()["errors"], (param, value, r.content)
        assert api.get(base(agent, thread), {param: 2**31 - 1}).status_code == 200
