"""The unmodified LangGraph SDK against a live server: threads, state, history.

Every call goes through `langgraph_sdk.get_sync_client(url=<live server>/api)`, as a
LangGraph user's code does; the assertions are on what the SDK returns and on the
database underneath."""

import threading
import uuid
from typing import get_type_hints

import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError
from langgraph_sdk.schema import Thread as SDKThread
from langgraph_sdk.schema import ThreadState as SDKThreadState
from rest_framework_simplejwt.tokens import RefreshToken

from projects import services as project_services
from projects.models import Project
from threads import services
from threads.models import Checkpoint, Message, Run, Thread

pytestmark = pytest.mark.django_db(transaction=True)

THREAD_KEYS = {k for k in get_type_hints(SDKThread) if k != "extracted"}
STATE_KEYS = set(get_type_hints(SDKThreadState))


def sdk_client(live_server, user, **headers):
    token = RefreshToken.for_user(user).access_token
    return get_sync_client(url=live_server.url + "/api", headers={"Authorization": f"Bearer {token}", **headers},
                           api_key=None)


@pytest.fixture
def client(live_server, owner, account):
    return sdk_client(live_server, owner)


def assert_thread(thread):
    assert THREAD_KEYS <= set(thread), THREAD_KEYS - set(thread)
    assert thread["status"] in ("idle", "busy", "interrupted", "error")


def test_create_without_a_project_goes_to_the_accounts_default_project(client, account):
    thread = client.threads.create(metadata={"user": "u1"})
    assert_thread(thread)
    assert thread["metadata"] == {"user": "u1"} and thread["status"] == "idle" and thread["values"] == {}
    default = Project.objects.get(account=account, is_default=True)
    assert Thread.objects.get(pk=thread["thread_id"]).project_id == default.pk
    second = client.threads.create()
    assert Thread.objects.get(pk=second["thread_id"]).project_id == default.pk  # one default project
    client.threads.delete(thread["thread_id"])
    client.threads.delete(second["thread_id"])
    assert not Project.objects.filter(pk=default.pk).exists()  # the last thread took it (like any project)
    third = client.threads.create()
    assert Thread.objects.get(pk=third["thread_id"]).project.is_default  # made again on demand


def test_the_account_comes_from_the_header_when_the_caller_has_several(live_server, owner, account, make_user):
    other = project_services.create_account(name="Second", owner=owner)
    ambiguous = sdk_client(live_server, owner)
    with pytest.raises(UnprocessableEntityError) as refused:
        ambiguous.threads.create()
    assert "X-Account-Id" in refused.value.response.json()["detail"]
    named = sdk_client(live_server, owner, **{"X-Account-Id": str(other.pk)})
    thread = named.threads.create()
    assert Thread.objects.get(pk=thread["thread_id"]).account_id == other.pk
    stranger = project_services.create_account(name="Stranger's", owner=make_user("x"))
    with pytest.raises(NotFoundError):
        sdk_client(live_server, owner, **{"X-Account-Id": str(stranger.pk)}).threads.create()


def test_caller_chosen_id_and_if_exists(client):
    thread_id = str(uuid.uuid4())
    created = client.threads.create(thread_id=thread_id, metadata={"n": 1})
    assert created["thread_id"] == thread_id
    with pytest.raises(ConflictError):
        client.threads.create(thread_id=thread_id, if_exists="raise")
    existing = client.threads.create(thread_id=thread_id, if_exists="do_nothing", metadata={"n": 2})
    assert existing["thread_id"] == thread_id and existing["metadata"] == {"n": 1}
    assert Thread.objects.filter(pk=thread_id).count() == 1


def test_ttl_with_a_strategy_and_graph_id(client):
    thread = client.threads.create(ttl={"ttl": 5, "strategy": "keep_latest"}, graph_id="echo")
    row = Thread.objects.get(pk=thread["thread_id"])
    assert row.ttl_minutes == 5 and row.ttl_strategy == "keep_latest" and row.expires_at is not None
    assert thread["ttl"] == 5 and thread["metadata"] == {"graph_id": "echo"}
    minutes = client.threads.create(ttl=7)  # the SDK sends {"ttl": 7, "strategy": "delete"}
    assert Thread.objects.get(pk=minutes["thread_id"]).ttl_strategy == "delete"
    with pytest.raises(UnprocessableEntityError):
        client.threads.create(ttl={"ttl": 5, "strategy": "forget"})


def test_get_and_update_merge_metadata(client):
    thread = client.threads.create(metadata={"a": 1, "b": 2})
    updated = client.threads.update(thread["thread_id"], metadata={"b": 3, "c": 4})
    assert updated["metadata"] == {"a": 1, "b": 3, "c": 4}
    got = client.threads.get(thread["thread_id"])
    assert_thread(got)
    assert got["metadata"] == {"a": 1, "b": 3, "c": 4}
    assert client.threads.update(thread["thread_id"], metadata={"d": 5}, return_minimal=True) is None
    with pytest.raises(NotFoundError):
        client.threads.get(str(uuid.uuid4()))


def test_search_and_count(client, owner):
    ids = [client.threads.create(metadata={"team": "red" if i % 2 else "blue", "i": i})["thread_id"]
           for i in range(5)]
    red = client.threads.search(metadata={"team": "red"})
    assert {t["thread_id"] for t in red} == {ids[1], ids[3]}
    for t in red:
        assert_thread(t)
    assert client.threads.count(metadata={"team": "blue"}) == 3
    assert {t["thread_id"] for t in client.threads.search(ids=[ids[0], ids[4]])} == {ids[0], ids[4]}
    page1 = client.threads.search(limit=2, offset=0, sort_by="created_at", sort_order="asc")
    page2 = client.threads.search(limit=2, offset=2, sort_by="created_at", sort_order="asc")
    assert [t["thread_id"] for t in page1 + page2] == ids[:4]
    # status: a failed last run is `error`, a run paused on an approval `interrupted`
    conversation(client, ids[2], "fail: boom")
    conversation(client, ids[3], "approve: deploy")
    assert [t["thread_id"] for t in client.threads.search(status="error")] == [ids[2]]
    interrupted, = client.threads.search(status="interrupted")
    assert interrupted["thread_id"] == ids[3]
    (task_interrupts,) = interrupted["interrupts"].values()
    assert task_interrupts[0]["value"]["tool_name"] == "deploy"
    assert client.threads.search(status="busy") == []
    assert client.threads.count(status="idle") == 3
    only = client.threads.search(ids=[ids[0]], select=["thread_id", "metadata"])
    assert only == [{"thread_id": ids[0], "metadata": {"team": "blue", "i": 0}}]


def conversation(client, thread_id, text):
    """A user message and an echo run, executed in-process."""
    thread = Thread.objects.get(pk=thread_id)
    services.post_message(thread=thread, role="user", content=[{"type": "text", "text": text}])
    run = services.create_run(thread=thread)
    services.execute_run(run_id=run.pk)


def test_state_values_hold_the_echo_conversation_in_langgraph_messages(client):
    thread = client.threads.create()
    conversation(client, thread["thread_id"], "hello")
    conversation(client, thread["thread_id"], "again")
    state = client.threads.get_state(thread["thread_id"])
    assert STATE_KEYS <= set(state)
    messages = state["values"]["messages"]
    assert [(m["type"], m["content"]) for m in messages] == [
        ("human", "hello"), ("ai", "Echo: hello"), ("human", "again"), ("ai", "Echo: again")]
    stored = list(Message.objects.filter(thread_id=thread["thread_id"]).order_by("seq").values_list("id", flat=True))
    assert [m["id"] for m in messages] == [str(i) for i in stored]  # the same messages
    assert state["checkpoint"]["thread_id"] == thread["thread_id"] and state["next"] == []
    assert client.threads.get(thread["thread_id"])["values"] == state["values"]


def test_update_state_history_and_state_at_a_checkpoint(client):
    thread = client.threads.create()
    tid = thread["thread_id"]
    first = client.threads.update_state(tid, {"messages": [{"role": "user", "content": "hi"}], "topic": "a"},
                                        as_node="echo")
    assert set(first["checkpoint"]) >= {"thread_id", "checkpoint_ns", "checkpoint_id"}
    second = client.threads.update_state(tid, {"topic": "b"})
    state = client.threads.get_state(tid)
    assert state["values"]["topic"] == "b" and state["values"]["messages"][0]["type"] == "human"
    assert state["checkpoint"]["checkpoint_id"] == second["checkpoint"]["checkpoint_id"]
    assert state["parent_checkpoint"]["checkpoint_id"] == first["checkpoint"]["checkpoint_id"]
    history = client.threads.get_history(tid)
    assert [h["checkpoint"]["checkpoint_id"] for h in history] == [
        second["checkpoint"]["checkpoint_id"], first["checkpoint"]["checkpoint_id"]]
    for h in history:
        assert STATE_KEYS <= set(h)
    assert history[1]["metadata"]["writes"] == {"echo": {"messages": [{"role": "user", "content": "hi"}],
                                                         "topic": "a"}}
    [only] = client.threads.get_history(tid, checkpoint=first["checkpoint"])  # as LangGraph's checkpointers list
    assert only["checkpoint"]["checkpoint_id"] == first["checkpoint"]["checkpoint_id"]
    older = client.threads.get_history(tid, before=second["checkpoint"]["checkpoint_id"], limit=5)
    assert [h["values"]["topic"] for h in older] == ["a"]
    # `before` as a config, the shape LangGraph's history entries carry (it was ignored: the whole history)
    config = {"configurable": {"checkpoint_id": second["checkpoint"]["checkpoint_id"]}}
    assert [h["values"]["topic"] for h in client.threads.get_history(tid, before=config)] == ["a"]
    with pytest.raises(UnprocessableEntityError):
        client.threads.get_history(tid, before={"configurable": {}})
    assert [h["values"]["topic"] for h in client.threads.get_history(tid, metadata={"source": "update"}, limit=1)] \
        == ["b"]
    at_first = client.threads.get_state(tid, checkpoint_id=first["checkpoint"]["checkpoint_id"])
    assert at_first["values"]["topic"] == "a"
    at_ref = client.threads.get_state(tid, checkpoint=first["checkpoint"])
    assert at_ref["values"] == at_first["values"]
    with pytest.raises(NotFoundError):
        client.threads.get_state(tid, checkpoint_id="nope")


def test_a_run_or_an_update_from_an_older_checkpoint_forks_the_state(client):
    """LangGraph's time travel: a run given `checkpoint_id` (or an update given one)
    starts from that checkpoint's state; what came after it stays in the history, on
    the branch left behind."""
    tid = client.threads.create()["thread_id"]
    say = lambda text, **options: client.runs.wait(  # noqa: E731
        tid, "echo", input={"messages": [{"role": "user", "content": text}]}, **options)
    say("one")
    after_one = client.threads.get_state(tid)["checkpoint"]
    say("two")
    values = say("branch", checkpoint_id=after_one["checkpoint_id"])
    assert [m["content"] for m in values["messages"]] == ["one", "Echo: one", "branch", "Echo: branch"]
    assert [m["content"] for m in client.threads.get_state(tid)["values"]["messages"]] == [
        "one", "Echo: one", "branch", "Echo: branch"]
    values = say("again", checkpoint=after_one)  # the same, as a checkpoint reference
    assert [m["content"] for m in values["messages"]] == ["one", "Echo: one", "again", "Echo: again"]
    client.threads.update_state(tid, {"topic": "t"}, checkpoint_id=after_one["checkpoint_id"])
    forked = client.threads.get_state(tid)["values"]
    assert [m["content"] for m in forked["messages"]] == ["one", "Echo: one"] and forked["topic"] == "t"
    assert any("two" in [m["content"] for m in h["values"].get("messages", [])]
               for h in client.threads.get_history(tid, limit=50))  # the other branch is kept
    for bad in ("garbage", str(uuid.uuid4())):
        with pytest.raises(NotFoundError):
            client.runs.create(tid, "echo", input={"messages": [{"role": "user", "content": "x"}]}, checkpoint_id=bad)
    assert Run.objects.filter(thread_id=tid).count() == 4


def test_a_client_message_id_is_kept_when_new(client):
    """The id a client gives an input message (a UUID, as LangGraph's clients make
    them) is the stored message's and the state's; one already taken is not
    overwritten: that message gets a new id."""
    tid = client.threads.create()["thread_id"]
    mine = str(uuid.uuid4())
    values = client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "hi", "id": mine}]})
    assert values["messages"][0]["id"] == mine and Message.objects.get(pk=mine).text == "hi"
    values = client.runs.wait(tid, "echo", input={"messages": [
        {"role": "user", "content": "again", "id": mine}, {"role": "user", "content": "and", "id": "not-a-uuid"}]})
    assert [m["content"] for m in values["messages"]] == ["hi", "Echo: hi", "again", "and", "Echo: and"]
    assert Message.objects.get(pk=mine).text == "hi" and len({m["id"] for m in values["messages"]}) == 5


def test_update_state_removes_messages_from_the_state_as_add_messages_does(client):
    """LangGraph's RemoveMessage through `update_state`, on any message of the state —
    also one stored since the last checkpoint; the thread's stored messages stay (the
    record), only the state leaves it out. An id not in the state is a 422."""
    tid = client.threads.create()["thread_id"]
    client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "one"}]})
    conversation(client, tid, "two")
    # Stored since the last checkpoint (the native messages endpoint): part of the state
    # a run or an update starts from.
    three = services.post_message(thread=Thread.objects.get(pk=tid), role="user",
                                  content=[{"type": "text", "text": "three"}])
    state = client.threads.get_state(tid)["values"]["messages"]
    assert [m["content"] for m in state] == ["one", "Echo: one", "two", "Echo: two"]
    by_text = {**{m["content"]: m["id"] for m in state}, "three": str(three.pk)}
    client.threads.update_state(tid, {"messages": [{"type": "remove", "id": by_text["Echo: one"]},
                                                   {"type": "remove", "id": by_text["three"]}]})
    assert [m["content"] for m in client.threads.get_state(tid)["values"]["messages"]] == [
        "one", "two", "Echo: two"]
    with pytest.raises(UnprocessableEntityError):
        client.threads.update_state(tid, {"messages": [{"type": "remove", "id": "not-there"}]})
    client.threads.update_state(tid, {"messages": [{"type": "remove", "id": "__remove_all__"},
                                                   {"type": "human", "content": "fresh"}]})
    assert [m["content"] for m in client.threads.get_state(tid)["values"]["messages"]] == ["fresh"]
    assert Message.objects.filter(thread_id=tid).count() == 5  # the record keeps every message


def test_copy_has_the_same_messages_checkpoints_and_metadata(client):
    thread = client.threads.create(metadata={"k": "v"})
    conversation(client, thread["thread_id"], "copy me")
    copied = client.threads.copy(thread["thread_id"])
    assert copied["thread_id"] != thread["thread_id"] and copied["metadata"] == {"k": "v"}
    assert client.threads.get_state(copied["thread_id"])["values"] == client.threads.get_state(thread["thread_id"])["values"]
    texts = lambda tid: [m.text for m in Message.objects.filter(thread_id=tid).order_by("seq")]  # noqa: E731
    assert texts(copied["thread_id"]) == texts(thread["thread_id"]) == ["copy me", "Echo: copy me"]
    assert Checkpoint.objects.filter(thread_id=copied["thread_id"]).count() == 1
    tokens = Thread.objects.filter(pk__in=[thread["thread_id"], copied["thread_id"]]).values_list("message_tokens", flat=True)
    assert len(set(tokens)) == 1 and tokens[0] > 0  # the copy's token total is its messages'
    conversation(client, copied["thread_id"], "next")  # the copy goes on from the same state
    messages = client.threads.get_state(copied["thread_id"])["values"]["messages"]
    assert [m["content"] for m in messages] == ["copy me", "Echo: copy me", "next", "Echo: next"]


def test_delete_and_prune_both_strategies(client):
    a, b, c = (client.threads.create()["thread_id"] for _ in range(3))
    for tid in (a, b, c):
        conversation(client, tid, "one")
        conversation(client, tid, "two")
    assert client.threads.prune([a], strategy="keep_latest") == {"pruned_count": 1}
    assert Checkpoint.objects.filter(thread_id=a).count() == 1
    assert len(client.threads.get_state(a)["values"]["messages"]) == 4  # the latest state stays whole
    assert client.threads.prune([b]) == {"pruned_count": 1}
    assert not Thread.objects.filter(pk=b).exists()
    client.threads.delete(c)
    assert not Thread.objects.filter(pk=c).exists() and not Run.objects.filter(thread_id=c).exists()
    with pytest.raises(NotFoundError):
        client.threads.delete(c)


def contents(state) -> list:
    return [(m["type"], m["content"]) for m in state["values"]["messages"]]


def test_a_run_s_input_messages_join_the_state_once(client):
    """Input without a user message (a system or an assistant message) was put into
    the state twice: once stored, once again from the run's input."""
    tid = client.threads.create()["thread_id"]
    client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "q1"}]})
    client.runs.wait(tid, "echo", input={"messages": [{"role": "system", "content": "be nice"}]})
    client.runs.wait(tid, "echo", input={"messages": [{"role": "assistant", "content": "noted"}]})
    assert contents(client.threads.get_state(tid)) == [
        ("human", "q1"), ("ai", "Echo: q1"), ("system", "be nice"), ("ai", "Echo: q1"), ("ai", "noted"),
        ("ai", "Echo: q1")]


def test_a_run_at_a_breakpoint_continues_from_the_edited_state(client):
    """LangGraph's human-in-the-loop edit: pause before the node, edit the state,
    continue — the run answers the edited state (it re-added its original input
    after the edit, and answered that)."""
    tid = client.threads.create()["thread_id"]
    client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "pause"}]},
                     interrupt_before=["echo"])
    assert client.threads.get_state(tid)["next"] == ["echo"]
    client.threads.update_state(tid, {"messages": [{"type": "human", "content": "edited question"}]})
    client.runs.wait(tid, "echo", input=None)
    assert contents(client.threads.get_state(tid)) == [
        ("human", "pause"), ("human", "edited question"), ("ai", "Echo: edited question")]


def test_a_rolled_back_run_s_input_leaves_the_state_and_stays_on_record(client):
    """After `cancel(action="rollback")` the state is as before the run — also for the
    next run, which used to see the rolled-back input again."""
    tid = client.threads.create()["thread_id"]
    client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "keep"}]})
    held = client.runs.create(tid, "echo", input={"messages": [{"role": "user", "content": "approve: tool.hold"}]})
    assert Run.objects.get(pk=held["run_id"]).status == "running"  # paused on its approval
    client.runs.cancel(tid, held["run_id"], action="rollback")
    assert contents(client.threads.get_state(tid)) == [("human", "keep"), ("ai", "Echo: keep")]
    client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "next"}]})
    assert contents(client.threads.get_state(tid)) == [
        ("human", "keep"), ("ai", "Echo: keep"), ("human", "next"), ("ai", "Echo: next")]
    kept = Message.objects.get(thread_id=tid, rolled_back=True)  # the record of what was sent
    assert kept.text == "approve: tool.hold" and kept.run_id is None
    in_state = sum(Message.objects.filter(thread_id=tid, rolled_back=False).values_list("token_count", flat=True))
    assert Thread.objects.get(pk=tid).message_tokens == in_state  # the estimate counts the state only
    copy = client.threads.copy(tid)["thread_id"]  # a copy keeps it out of the state too
    assert contents(client.threads.get_state(copy)) == contents(client.threads.get_state(tid))


def test_a_busy_thread_refuses_a_state_update(client):
    """The run writes its result over the state it started from: an update sent while
    it runs answered 200 and was then lost. As on LangGraph, a busy thread is a 409;
    a thread paused on an interrupt takes the update."""
    tid = client.threads.create()["thread_id"]
    run = client.runs.create(tid, "echo", input={"messages": [{"role": "user", "content": "later"}]},
                             after_seconds=3600)
    with pytest.raises(ConflictError):
        client.threads.update_state(tid, {"x": 1})
    client.runs.cancel(tid, run["run_id"])
    client.threads.update_state(tid, {"x": 1})
    assert client.threads.get_state(tid)["values"]["x"] == 1


def test_updated_at_moves_with_runs_and_state_and_sorts_recent_activity_first(client):
    """`updated_at` stayed at creation whatever happened on the thread, and sorting by
    `state_updated_at` put the threads without a checkpoint first."""
    older, newer, bare = (client.threads.create()["thread_id"] for _ in range(3))
    created = client.threads.get(older)["updated_at"]
    client.runs.wait(older, "echo", input={"messages": [{"role": "user", "content": "hi"}]})
    after_run = client.threads.get(older)["updated_at"]
    assert after_run > created
    client.threads.update_state(newer, {"x": 1})
    assert client.threads.get(newer)["updated_at"] > created
    client.threads.update_state(older, {"x": 2})
    assert client.threads.get(older)["updated_at"] > after_run
    ids = [t["thread_id"] for t in client.threads.search(sort_by="updated_at", sort_order="desc")]
    assert ids[:3] == [older, newer, bare]
    by_state = [t["thread_id"] for t in client.threads.search(sort_by="state_updated_at", sort_order="desc")]
    assert by_state[:3] == [older, newer, bare]


def test_a_run_names_its_graph_and_assistant_in_the_thread_s_metadata(client):
    """As LangGraph's server does (thread lists filter on them, and
    `assistants.delete(delete_threads=True)` finds an assistant's threads by them); and
    a run's metadata reaches the checkpoints it writes."""
    tid = client.threads.create(metadata={"team": "ops"})["thread_id"]
    assistant = client.assistants.create("echo")
    client.runs.wait(tid, assistant["assistant_id"], input={"messages": [{"role": "user", "content": "hi"}]},
                     metadata={"experiment": "A"})
    assert client.threads.get(tid)["metadata"] == {"team": "ops", "graph_id": "echo",
                                                   "assistant_id": assistant["assistant_id"]}
    assert [t["thread_id"] for t in client.threads.search(metadata={"assistant_id": assistant["assistant_id"]})] == [tid]
    [entry] = client.threads.get_history(tid, metadata={"experiment": "A"})
    assert entry["metadata"]["run_id"] and entry["metadata"]["experiment"] == "A"
    client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "again"}]})
    assert client.threads.get(tid)["metadata"]["assistant_id"] == str(uuid.uuid5(
        uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "echo"))


def test_a_state_update_as_an_unknown_node_is_a_422(client):
    """As `interrupt_before` with an unknown node: it was accepted silently."""
    tid = client.threads.create()["thread_id"]
    with pytest.raises(UnprocessableEntityError) as refused:
        client.threads.update_state(tid, {"x": 1}, as_node="nonexistent")
    assert "as_node" in refused.value.response.json()["errors"]
    client.threads.update_state(tid, {"x": 1}, as_node="echo")
    client.threads.update_state(tid, {"x": 2}, as_node="__start__")
    assert client.threads.get_state(tid)["values"]["x"] == 2


def test_sorting_by_status_sorts_by_the_status_shown(client):
    """`sort_by="status"` ordered by the lifecycle underneath (awaiting, closed, idle,
    running): a thread whose last run failed (`error`) sorted among the `idle` ones,
    and `interrupted` came before `busy`. As LangGraph's server, the order is that of
    the status each thread shows, alphabetical."""
    idle, failed, paused, busy, idle_again = (client.threads.create()["thread_id"] for _ in range(5))
    conversation(client, failed, "fail: boom")
    conversation(client, paused, "approve: deploy")
    client.runs.create(busy, "echo", input={"messages": [{"role": "user", "content": "later"}]}, after_seconds=3600)
    conversation(client, idle_again, "hello")
    ids = {idle: "idle", failed: "error", paused: "interrupted", busy: "busy", idle_again: "idle"}
    for order in ("asc", "desc"):
        found = [t for t in client.threads.search(sort_by="status", sort_order=order) if t["thread_id"] in ids]
        assert [t["status"] for t in found] == sorted(ids.values(), reverse=order == "desc")
        assert all(ids[t["thread_id"]] == t["status"] for t in found)
    first = client.threads.search(sort_by="status", sort_order="asc", limit=2)
    second = client.threads.search(sort_by="status", sort_order="asc", limit=3, offset=2)
    assert [t["status"] for t in first + second] == ["busy", "error", "idle", "idle", "interrupted"]


def test_a_deleted_run_s_messages_leave_the_state_for_later_runs_too(client):
    """`runs.delete` takes the run's checkpoints, so `get_state` is back to before the
    run; the next run put the deleted run's messages (its input, its answer) back into
    the state. They stay on record, detached, as after a rollback; a run deleted
    under a later one changes nothing in the state (the later checkpoint holds it)."""
    tid = client.threads.create()["thread_id"]
    say = lambda text: client.runs.wait(  # noqa: E731
        tid, "echo", input={"messages": [{"role": "user", "content": text}]})
    say("one")
    say("two")
    second = client.runs.list(tid, limit=1)[0]["run_id"]
    client.runs.delete(tid, second)
    assert contents(client.threads.get_state(tid)) == [("human", "one"), ("ai", "Echo: one")]
    say("three")
    assert contents(client.threads.get_state(tid)) == [
        ("human", "one"), ("ai", "Echo: one"), ("human", "three"), ("ai", "Echo: three")]
    assert list(Message.objects.filter(thread_id=tid, rolled_back=True).order_by("seq").values_list(
        "role", "run_id")) == [("user", None), ("assistant", None)]  # the record of what was said
    in_state = sum(Message.objects.filter(thread_id=tid, rolled_back=False).values_list("token_count", flat=True))
    assert Thread.objects.get(pk=tid).message_tokens == in_state
    first = client.runs.list(tid)[-1]["run_id"]
    client.runs.delete(tid, first)  # an older run: its messages are in the later checkpoints
    say("four")
    assert contents(client.threads.get_state(tid))[:4] == [
        ("human", "one"), ("ai", "Echo: one"), ("human", "three"), ("ai", "Echo: three")]
    # a run deleted while it ran (force): its input leaves the state
    held = client.runs.create(tid, "echo", input={"messages": [{"role": "user", "content": "approve: tool.hold"}]})
    client.runs.delete(tid, held["run_id"], params={"force": "true"})
    say("five")
    assert [text for _, text in contents(client.threads.get_state(tid))][-2:] == ["five", "Echo: five"]
    assert "approve: tool.hold" not in [text for _, text in contents(client.threads.get_state(tid))]


def test_a_deleted_thread_s_stream_is_not_replayed_to_a_new_thread_with_its_id(live_server, client, other_account):
    """A thread id is the caller's, so it can be taken again once its thread is
    deleted — by another account too. The thread stream's log outlived the thread:
    joining the new thread's stream with `Last-Event-ID` replayed the deleted thread's
    events (its messages), and a follower of the deleted thread still connected went
    on with the new thread's. Now the new thread's log starts empty and the old
    follower ends (`deleted`) before anything of the new thread."""
    tid = str(uuid.uuid4())
    client.threads.create(thread_id=tid)
    client.runs.wait(tid, "echo", input={"messages": [{"role": "user", "content": "old secret"}]})
    old_follower = []

    def follow():
        for part in client.threads.join_stream(tid, last_event_id="0-0"):
            old_follower.append(part)
            if part.event == "end" and part.data.get("status") == "deleted":
                return

    following = threading.Thread(target=follow, daemon=True)
    following.start()
    while not any(p.event == "end" for p in old_follower):  # it replayed the run: it follows the thread now
        following.join(0.1)
    client.threads.delete(tid)
    stranger = sdk_client(live_server, other_account.memberships.get().user)
    stranger.threads.create(thread_id=tid)
    run = stranger.runs.create(tid, "echo", input={"messages": [{"role": "user", "content": "new words"}]})
    seen = []
    for part in stranger.threads.join_stream(tid, last_event_id="0-0"):
        seen.append(part)
        if part.event == "end":
            break
    assert seen[0].event == "metadata" and seen[0].data["run_id"] == run["run_id"]
    assert "old secret" not in str([p.data for p in seen])
    following.join(15)
    assert not following.is_alive()
    assert old_follower[-1].data == {"thread_id": tid, "status": "deleted"}
    assert "new words" not in str([p.data for p in old_follower])


def test_a_run_from_the_sdk_shows_what_it_was_asked_in_the_agent_thread_detail(client, live_server, owner, account):
    """A run started by the SDK on an agent's thread is a turn of the Cerca detail like
    any: its `message` is the text of its last user message."""
    import httpx

    from agents import services as agent_services

    agent = agent_services.create_agent(account=account, name="Cerca", model="echo-1")
    tid = client.threads.create()["thread_id"]
    client.runs.wait(tid, str(agent.pk), input={"messages": [
        {"role": "user", "content": "first"}, {"type": "human", "content": [{"type": "text", "text": "what now?"}]}]})
    token = RefreshToken.for_user(owner).access_token
    detail = httpx.get(f"{live_server.url}/api/agents/{agent.pk}/threads/{tid}",
                       headers={"Authorization": f"Bearer {token}"}).json()
    assert detail["message"] == "what now?" and detail["lastTurnStatus"] == "completed"
    assert [turn["message"] for turn in detail["turns"]] == ["what now?"]
