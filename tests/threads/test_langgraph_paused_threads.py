"""LangGraph's threads paused on an interrupt, and the thread and run contract
around them, through the real `langgraph-sdk` against a live server: a copy is paused
the same way and resumes on its own; `update_state(as_node=<the waiting node>)`
moves the graph past the node; `runs.list(select=...)` takes every field the SDK can
send; a thread id held by another account is answered as that account's threads are."""

import threading
import uuid
from typing import get_args, get_type_hints

import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import ConflictError, NotFoundError
from langgraph_sdk.schema import Run as SDKRun
from langgraph_sdk.schema import RunSelectField
from rest_framework_simplejwt.tokens import RefreshToken

from tests.conftest import wait_for
from threads import services
from threads.models import Approval, Run, Thread

from .test_run_options import receiver  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_server, owner, account):
    token = RefreshToken.for_user(owner).access_token
    return get_sync_client(url=f"{live_server.url}/api", api_key=None,
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)


def ask(text):
    return {"messages": [{"role": "user", "content": text}]}


def contents(state) -> list:
    return [m["content"] for m in state["values"]["messages"]]


def paused(client, text="hi", **options) -> tuple[str, str]:
    """A new thread whose run waits on an interrupt: (thread id, run id)."""
    tid = client.threads.create()["thread_id"]
    run = client.runs.create(tid, "echo", input=ask(text), **options)
    assert wait_for(lambda: Approval.objects.filter(thread_id=tid, status="pending").exists())
    return tid, run["run_id"]


def joined_within(client, thread_id, run_id, *, seconds: float):
    """`runs.join`, which must answer within `seconds` (its heartbeats would keep a
    hanging join open past the client's read timeout)."""
    answer = []
    joining = threading.Thread(target=lambda: answer.append(client.runs.join(thread_id, run_id)), daemon=True)
    joining.start()
    joining.join(seconds)
    assert answer, f"the join of run {run_id} did not end within {seconds} s"
    return answer[0]


def waiting_on(state) -> tuple:
    """What a state says the graph waits on, without the ids (a task's is its run's,
    an interrupt's its approval's: each thread has its own)."""
    return (state["next"], [(t["name"], [i["value"] for i in t["interrupts"]]) for t in state["tasks"]],
            [i["value"] for i in state["interrupts"]])


# --- copy ---------------------------------------------------------------------------


def test_a_copy_of_a_thread_paused_at_a_breakpoint_is_paused_the_same_way_and_resumes_on_its_own(
        client, receiver):  # noqa: F811
    hook = receiver()
    tid, run_id = paused(client, interrupt_before=["echo"], webhook=hook.url)
    copy = client.threads.copy(tid)["thread_id"]
    original, copied = client.threads.get_state(tid), client.threads.get_state(copy)
    assert waiting_on(copied) == waiting_on(original)
    assert copied["next"] == ["echo"] and copied["interrupts"][0]["value"]["tool_name"] == "interrupt_before:echo"
    assert copied["values"] == original["values"]
    assert client.threads.get(copy)["status"] == client.threads.get(tid)["status"] == "interrupted"
    assert client.threads.get(copy)["interrupts"]  # the thread shows them too
    [copied_run] = client.runs.list(copy)
    assert copied_run["status"] == "running" and copied_run["run_id"] != run_id
    assert "webhook" not in copied_run["kwargs"]  # the original's creator asked for it, about their run
    joins = [joined_within(client, thread_id, run, seconds=20)  # a join ends at the interrupt, on either
             for thread_id, run in ((tid, run_id), (copy, copied_run["run_id"]))]
    assert [[m["content"] for m in j["messages"]] for j in joins] == [["hi"], ["hi"]]
    assert all(j["__interrupt__"] for j in joins)

    client.runs.create(copy, "echo", command={"resume": True})  # the copy goes on...
    final = client.runs.join(copy, copied_run["run_id"])
    assert [m["content"] for m in final["messages"]] == ["hi", "Echo: hi"]
    assert client.threads.get(copy)["status"] == "idle" and client.threads.get_state(copy)["next"] == []
    assert waiting_on(client.threads.get_state(tid)) == waiting_on(original)  # ...the original still waits
    assert client.runs.get(tid, run_id)["status"] == "running"
    assert client.threads.get_state(tid)["values"] == original["values"]

    client.runs.create(tid, "echo", command={"resume": True})  # and continues on its own
    assert [m["content"] for m in client.runs.join(tid, run_id)["messages"]] == ["hi", "Echo: hi"]
    assert contents(client.threads.get_state(copy)) == ["hi", "Echo: hi"]
    assert wait_for(lambda: hook.bodies) and [b["run_id"] for _, b in hook.bodies] == [run_id]


def test_a_copy_of_a_thread_paused_on_a_tool_approval_decides_it_apart(client):
    tid, run_id = paused(client, "approve:deploy")
    copy = client.threads.copy(tid)["thread_id"]
    assert waiting_on(client.threads.get_state(copy)) == waiting_on(client.threads.get_state(tid))
    assert client.threads.get(copy)["status"] == "interrupted"
    client.runs.create(copy, "echo", command={"resume": {"approved": False}})
    [copied_run] = client.runs.list(copy)
    assert client.runs.join(copy, copied_run["run_id"]) is not None
    assert client.runs.get(copy, copied_run["run_id"])["status"] == "success"
    assert Approval.objects.get(thread_id=copy).status == "denied"
    assert Approval.objects.get(thread_id=tid).status == "pending"
    assert client.threads.get(tid)["status"] == "interrupted"


def test_a_copy_of_a_thread_not_paused_has_no_run_and_is_idle(client):
    tid = client.threads.create()["thread_id"]
    client.runs.wait(tid, "echo", input=ask("hi"))
    copy = client.threads.copy(tid)["thread_id"]
    assert client.runs.list(copy) == [] and client.threads.get(copy)["status"] == "idle"
    assert client.threads.get_state(copy)["next"] == []


# --- update_state as a node -----------------------------------------------------------


def test_an_update_as_the_node_a_breakpoint_waits_before_stands_for_it_and_ends_the_run(client):
    """LangGraph's `as_node`: apply the update as if that node ran. The echo graph is
    `__start__ -> echo -> __end__`, so after an update as `echo` nothing is next: the
    breakpoint is resolved, the thread idle, and the paused run over (`success`, as
    LangGraph's run that stopped at the breakpoint)."""
    tid, run_id = paused(client, interrupt_before=["echo"])
    client.threads.update_state(tid, {"messages": [{"type": "ai", "content": "written by hand"}]}, as_node="echo")
    state = client.threads.get_state(tid)
    assert (state["next"], state["tasks"], state["interrupts"]) == ([], [], [])
    assert contents(state) == ["hi", "written by hand"] and state["metadata"]["writes"]["echo"]
    thread = client.threads.get(tid)
    assert thread["status"] == "idle" and not thread["interrupts"]
    assert client.runs.get(tid, run_id)["status"] == "success"
    final = client.runs.join(tid, run_id)
    assert "__interrupt__" not in final and [m["content"] for m in final["messages"]] == ["hi", "written by hand"]
    assert Approval.objects.get(thread_id=tid).status == "cancelled"
    # The thread takes new input as any idle thread; the node never answered "hi".
    values = client.runs.wait(tid, "echo", input=ask("next"))
    assert [m["content"] for m in values["messages"]] == ["hi", "written by hand", "next", "Echo: next"]


def test_an_update_as_the_start_node_leaves_the_breakpoint_waiting(client):
    """`__start__` leads to `echo`: `next` stays `echo` (the graph has not reached it)."""
    tid, run_id = paused(client, interrupt_before=["echo"])
    client.threads.update_state(tid, {"note": "edited"}, as_node="__start__")
    state = client.threads.get_state(tid)
    assert state["next"] == ["echo"] and state["values"]["note"] == "edited"
    assert client.threads.get(tid)["status"] == "interrupted" and client.runs.get(tid, run_id)["status"] == "running"
    client.runs.create(tid, "echo", command={"resume": None})
    assert [m["content"] for m in client.runs.join(tid, run_id)["messages"]] == ["hi", "Echo: hi"]


def test_an_update_as_the_node_after_its_breakpoint_or_holding_a_tool_approval_ends_the_run(client):
    tid, run_id = paused(client, interrupt_after=["echo"])
    client.threads.update_state(tid, {"reviewed": True}, as_node="echo")
    assert client.threads.get(tid)["status"] == "idle" and client.threads.get_state(tid)["next"] == []
    run = Run.objects.get(pk=run_id)
    assert run.status == "success" and run.result == "Echo: hi"  # the node had answered

    tid, run_id = paused(client, "approve:deploy")
    client.threads.update_state(tid, {"messages": [{"type": "ai", "content": "not deploying"}]}, as_node="echo")
    state = client.threads.get_state(tid)
    assert (state["next"], state["interrupts"]) == ([], []) and contents(state)[-1] == "not deploying"
    assert client.runs.get(tid, run_id)["status"] == "success"
    assert Approval.objects.get(thread_id=tid).status == "cancelled"


@pytest.mark.worker
def test_a_paused_copy_resumes_and_an_update_as_the_node_ends_the_run_through_the_worker(
        client, celery_worker_process):
    """The run pauses in the worker; its copy resumes there, and the original is moved
    past its node by a state update — each on its own."""
    tid, run_id = paused(client, "through the worker", interrupt_before=["echo"])
    copy = client.threads.copy(tid)["thread_id"]
    assert client.threads.get(copy)["status"] == "interrupted"
    copied_run = client.runs.create(copy, "echo", command={"resume": True})
    final = client.runs.join(copy, copied_run["run_id"])
    assert [m["content"] for m in final["messages"]] == ["through the worker", "Echo: through the worker"]
    assert Run.objects.get(pk=copied_run["run_id"]).executor  # the worker continued it
    client.threads.update_state(tid, {"messages": [{"type": "ai", "content": "by hand"}]}, as_node="echo")
    assert wait_for(lambda: client.runs.get(tid, run_id)["status"] == "success")
    assert client.threads.get(tid)["status"] == "idle" and client.threads.get_state(tid)["next"] == []
    assert contents(client.threads.get_state(tid)) == ["through the worker", "by hand"]


# --- runs.list(select=...) -------------------------------------------------------------


def test_runs_list_selects_every_field_the_sdk_can_send(client):
    tid = client.threads.create()["thread_id"]
    client.runs.wait(tid, "echo", input=ask("hi"))
    held = client.runs.create(tid, "echo", input=ask("approve:x"))
    assert wait_for(lambda: Approval.objects.filter(thread_id=tid, status="pending").exists())
    client.runs.cancel(tid, held["run_id"])
    fields = list(get_args(RunSelectField))
    assert "cancel_reason" in fields
    for field in fields:
        assert [set(r) for r in client.runs.list(tid, select=[field])] == [{field}, {field}]
    runs = client.runs.list(tid, select=fields)
    assert [set(r) for r in runs] == [set(fields)] * 2
    assert [r["status"] for r in runs] == ["interrupted", "success"]
    # Not recorded here: null, as LangGraph's server answers for a run with no reason.
    assert [r["cancel_reason"] for r in runs] == [None, None]
    whole = client.runs.get(tid, held["run_id"])
    assert set(get_type_hints(SDKRun)) <= set(whole) and whole["cancel_reason"] is None


# --- a thread id taken in another account ----------------------------------------------


def test_a_thread_id_another_account_holds_is_answered_as_that_account_s_threads_are(client, other_account):
    """`raise`: the same 409 as for one of the caller's own ids (it says the id is taken,
    not whose). `do_nothing`: the thread cannot be returned, so it is not found — the
    very answer any read of another account's thread gets."""
    theirs = services.create_thread(project=other_account.projects.create(name="P"), metadata={"owner": "them"})
    mine = client.threads.create(thread_id=str(uuid.uuid4()))["thread_id"]
    with pytest.raises(ConflictError) as own:
        client.threads.create(thread_id=mine, if_exists="raise")
    with pytest.raises(ConflictError) as foreign:
        client.threads.create(thread_id=str(theirs.pk), if_exists="raise")
    same = own.value.response.json()["detail"].replace(mine, str(theirs.pk))
    assert foreign.value.response.json() == {"detail": same}

    with pytest.raises(NotFoundError) as taken:
        client.threads.create(thread_id=str(theirs.pk), if_exists="do_nothing", metadata={"owner": "me"})
    with pytest.raises(NotFoundError) as read:
        client.threads.get(str(theirs.pk))
    assert taken.value.response.json() == read.value.response.json() == {"detail": "Thread not found."}
    theirs.refresh_from_db()
    assert theirs.metadata == {"owner": "them"} and Thread.objects.filter(pk=theirs.pk).count() == 1
    # The caller's own threads keep LangGraph's semantics.
    assert client.threads.create(thread_id=mine, if_exists="do_nothing")["thread_id"] == mine
