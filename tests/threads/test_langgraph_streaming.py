"""LangGraph's run endpoints driven by the real `langgraph-sdk` against a live server:
stream modes, wait, join, join_stream with a reconnect, list/get/delete, cancel."""

import time

import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import UnprocessableEntityError
from rest_framework_simplejwt.tokens import RefreshToken

from threads import services
from threads.models import Checkpoint, Message, Run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(live_server, owner):
    token = RefreshToken.for_user(owner).access_token
    return get_sync_client(url=f"{live_server.url}/api", api_key=None,
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture
def thread(project, owner):
    return services.create_thread(project=project, created_by=owner)


def ask(text):
    return {"messages": [{"role": "user", "content": text}]}


def test_stream_values_mode_sends_metadata_values_and_end_in_order(client, thread):
    parts = list(client.runs.stream(str(thread.pk), "echo", input=ask("hello world"), stream_mode="values"))
    events = [p.event for p in parts]
    assert events[0] == "metadata" and events[-1] == "end"
    assert set(events[1:-1]) == {"values"} and len(events) == 4
    run_id = parts[0].data["run_id"]
    assert Run.objects.get(pk=run_id).status == "success"
    final = parts[-2].data["messages"]
    assert final[-1]["type"] == "ai" and final[-1]["content"] == "Echo: hello world"
    assert parts[-1].data == {"run_id": run_id, "status": "success"}


def test_stream_messages_tuple_mode_streams_the_answer_token_by_token(client, thread):
    parts = list(client.runs.stream(str(thread.pk), "echo", input=ask("one two three"),
                                    stream_mode=["messages-tuple", "updates"]))
    events = [p.event for p in parts]
    assert events[0] == "metadata" and events[-1] == "end"
    chunks = [p.data for p in parts if p.event == "messages"]
    assert [c[0]["content"] for c in chunks] == ["Echo:", " one", " two", " three"]
    assert all(c[1]["run_id"] == parts[0].data["run_id"] for c in chunks)
    update = next(p.data for p in parts if p.event == "updates")
    (message,) = update["echo"]["messages"]  # keyed by the graph's node, as get_graph names it
    assert message["content"] == "Echo: one two three"
    assert message["id"] == chunks[0][0]["id"]  # the streamed chunks are this message
    assert events.index("updates") > max(i for i, e in enumerate(events) if e == "messages")
    stored = Message.objects.get(thread=thread, role="assistant")
    assert str(stored.pk) == message["id"]


def test_stream_events_debug_and_custom_modes(client, thread):
    parts = list(client.runs.stream(str(thread.pk), "echo", input=ask("a b"), stream_mode=["events", "debug", "custom"]))
    events = [p.event for p in parts]
    assert events[0] == "metadata" and events[-1] == "end" and parts[-1].data["status"] == "success"
    assert set(events[1:-1]) == {"events", "debug", "custom"}
    lifecycle = [p.data["event"] for p in parts if p.event == "events"]
    assert lifecycle[0] == "on_chain_start" and lifecycle[-1] == "on_chain_end"
    streamed = [p.data["data"]["chunk"]["content"] for p in parts
                if p.event == "events" and p.data["event"] == "on_chat_model_stream"]
    assert streamed == ["Echo:", " a", " b"]
    final = next(p.data for p in parts if p.event == "events" and p.data["event"] == "on_chain_end")
    assert final["data"]["output"]["messages"][-1]["content"] == "Echo: a b"
    debug = [p.data for p in parts if p.event == "debug"]
    assert [d["type"] for d in debug] == ["task", "task_result"]
    assert debug[1]["payload"]["result"][0][1][0]["content"] == "Echo: a b"
    assert [p.data for p in parts if p.event == "custom"] == [{"tokens": 3}]
    assert {p.data["name"] for p in parts if p.event == "events"} == {"echo"}  # the graph's node


def test_stream_tasks_mode_sends_the_node_s_task_and_its_result(client, thread):
    parts = list(client.runs.stream(str(thread.pk), "echo", input=ask("a b"), stream_mode="tasks"))
    tasks = [p.data for p in parts if p.event == "tasks"]
    assert [t["name"] for t in tasks] == ["echo", "echo"]
    assert tasks[0]["triggers"] == ["start"] and tasks[1]["error"] is None
    assert tasks[1]["result"][0][1][0]["content"] == "Echo: a b"


def test_thread_stream_replays_each_mode_from_last_event_id(client, thread):
    """`threads.join_stream`: every run of the thread on one stream; `lifecycle` only
    their starts and ends, `state_update` only their states."""
    first = client.runs.create(str(thread.pk), "echo", input=ask("one"), stream_mode=["values", "updates"])
    client.runs.join(str(thread.pk), first["run_id"])
    second = client.runs.wait(str(thread.pk), "echo", input=ask("two"))
    assert second["messages"][-1]["content"] == "Echo: two"

    def until_second_end(stream_mode):
        parts = []
        for part in client.threads.join_stream(str(thread.pk), stream_mode=stream_mode, last_event_id="0-0"):
            parts.append(part)
            if part.event == "end" and len([p for p in parts if p.event == "end"]) == 2:
                break
            if part.event == "values" and part.data["messages"][-1]["content"] == "Echo: two" \
                    and stream_mode == "state_update":
                break
        return parts

    everything = until_second_end("run_modes")
    ends = [p.data for p in everything if p.event == "end"]
    assert [e["run_id"] for e in ends][0] == first["run_id"] and all(e["status"] == "success" for e in ends)
    assert {"metadata", "values", "updates", "end"} <= {p.event for p in everything}
    lifecycle = until_second_end("lifecycle")
    assert [p.event for p in lifecycle] == ["metadata", "end", "metadata", "end"]
    states = until_second_end("state_update")
    assert {p.event for p in states} == {"values"}
    assert states[-1].data["messages"][-1]["content"] == "Echo: two"


def test_wait_returns_the_final_values(client, thread):
    values = client.runs.wait(str(thread.pk), "echo", input=ask("ping"))
    assert values["messages"][-1] == {**values["messages"][-1], "type": "ai", "content": "Echo: ping"}


def test_a_failing_run_streams_error_then_end(client, thread):
    parts = list(client.runs.stream(str(thread.pk), "echo", input=ask("fail: boom"), stream_mode="updates"))
    assert [p.event for p in parts] == ["metadata", "error", "end"]
    assert "boom" in parts[1].data["message"]
    assert parts[-1].data["status"] == "error"


def test_background_run_list_get_join_and_delete(client, thread):
    run = client.runs.create(str(thread.pk), "echo", input=ask("bg"), metadata={"k": "v"})
    assert {"run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata",
            "multitask_strategy", "kwargs"} <= set(run)
    assert run["metadata"] == {"k": "v"} and run["multitask_strategy"] == "enqueue"
    assert run["assistant_id"] == "echo" and run["kwargs"]["stream_mode"] == ["values"]
    values = client.runs.join(str(thread.pk), run["run_id"])
    assert values["messages"][-1]["content"] == "Echo: bg"
    runs = client.runs.list(str(thread.pk))
    assert isinstance(runs, list) and [r["run_id"] for r in runs] == [run["run_id"]]
    assert client.runs.list(str(thread.pk), status="pending") == []
    assert client.runs.list(str(thread.pk), select=["run_id", "status"]) == [
        {"run_id": run["run_id"], "status": "success"}]
    with pytest.raises(UnprocessableEntityError):
        client.runs.list(str(thread.pk), select=["bogus"])
    assert client.runs.get(str(thread.pk), run["run_id"])["status"] == "success"
    client.runs.delete(str(thread.pk), run["run_id"])
    assert client.runs.list(str(thread.pk)) == []


def test_join_stream_resumes_after_last_event_id_without_loss_or_repeats(client, thread):
    parts = list(client.runs.stream(str(thread.pk), "echo", input=ask("a b c d e"),
                                    stream_mode=["messages-tuple", "values"], stream_resumable=True))
    run_id = parts[0].data["run_id"]
    assert all(p.id for p in parts)
    # A client that saw the first three events reconnects with the last id it got.
    rest = list(client.runs.join_stream(str(thread.pk), run_id, last_event_id=parts[2].id))
    assert [(p.id, p.event) for p in parts[:3] + rest] == [(p.id, p.event) for p in parts]
    # Joining a resumable run's stream without an id replays it whole.
    again = list(client.runs.join_stream(str(thread.pk), run_id))
    assert [p.id for p in again] == [p.id for p in parts]
    # And a subset of the modes.
    only_values = list(client.runs.join_stream(str(thread.pk), run_id, stream_mode="values"))
    assert [p.event for p in only_values] == ["metadata", "values", "values", "end"]


def test_join_stream_of_a_finished_run_ends_at_once(client, thread):
    run = client.runs.create(str(thread.pk), "echo", input=ask("done"))
    client.runs.join(str(thread.pk), run["run_id"])
    parts = list(client.runs.join_stream(str(thread.pk), run["run_id"]))
    assert [p.event for p in parts] == ["end"] and parts[0].data["status"] == "success"


def test_cancel_interrupt_and_rollback(client, thread, project, owner):
    # Pending runs (a delayed run holds the thread): the second one queues behind the first.
    first = client.runs.create(str(thread.pk), "echo", input=ask("first"), after_seconds=3600)
    queued = client.runs.create(str(thread.pk), "echo", input=ask("later"))
    assert client.runs.get(str(thread.pk), queued["run_id"])["status"] == "pending"
    client.runs.cancel(str(thread.pk), first["run_id"], action="interrupt")
    assert client.runs.get(str(thread.pk), first["run_id"])["status"] == "interrupted"
    # The queued run started once the first one was interrupted.
    assert client.runs.get(str(thread.pk), queued["run_id"])["status"] == "success"
    held = client.runs.create(str(thread.pk), "echo", input=ask("approve: tool.y"))
    client.runs.cancel(str(thread.pk), held["run_id"], action="rollback", wait=True)
    assert not Run.objects.filter(pk=held["run_id"]).exists()
    assert not Checkpoint.objects.filter(run_id=held["run_id"]).exists()


def test_global_cancel_by_ids_and_by_status(client, thread, project, owner):
    other = services.create_thread(project=project, created_by=owner)
    a = client.runs.create(str(thread.pk), "echo", input=ask("approve: a"))
    b = client.runs.create(str(other.pk), "echo", input=ask("approve: b"))
    client.runs.cancel_many(thread_id=str(thread.pk), run_ids=[a["run_id"]])
    assert Run.objects.get(pk=a["run_id"]).status == "interrupted"
    assert Run.objects.get(pk=b["run_id"]).status == "running"
    client.runs.cancel_many(status="running", action="rollback")
    assert not Run.objects.filter(pk=b["run_id"]).exists()


def test_the_sdk_learns_the_created_run_s_ids_from_each_way_of_creating_it(client, thread):
    """`on_run_created` gets the thread and run ids (read from `Content-Location`) on a
    background run, a streamed one, a waited one and a stateless one."""
    seen = []
    created = client.runs.create(str(thread.pk), "echo", input=ask("one"), on_run_created=seen.append)
    client.runs.join(str(thread.pk), created["run_id"])
    list(client.runs.stream(str(thread.pk), "echo", input=ask("two"), on_run_created=seen.append))
    client.runs.wait(str(thread.pk), "echo", input=ask("three"), on_run_created=seen.append)
    runs = {str(r.pk): str(r.thread_id) for r in Run.objects.all()}
    assert len(seen) == 3 and seen[0]["run_id"] == created["run_id"]
    assert all(runs[s["run_id"]] == s["thread_id"] == str(thread.pk) for s in seen), (seen, runs)
    assert len(runs) == 3  # each callback named a different run
    parts = list(client.runs.stream(None, "echo", input=ask("four"), on_run_created=seen.append))
    assert seen[3]["run_id"] == parts[0].data["run_id"]  # the stream's metadata event names it too
    assert seen[3]["thread_id"] not in (None, str(thread.pk))  # its temporary thread (gone with it)


def test_global_cancel_of_one_thread_by_status(client, thread, project, owner):
    """The SDK's `cancel_many(thread_id=..., status=...)` sends no `run_ids`: that
    thread's runs with the status are cancelled, another thread's stay."""
    other = services.create_thread(project=project, created_by=owner)
    a = client.runs.create(str(thread.pk), "echo", input=ask("approve: a"))
    b = client.runs.create(str(other.pk), "echo", input=ask("approve: b"))
    client.runs.cancel_many(thread_id=str(thread.pk), status="pending")  # a is running: not among them
    assert Run.objects.get(pk=a["run_id"]).status == "running"
    client.runs.cancel_many(thread_id=str(thread.pk), status="all", run_ids=[])  # an empty list names no run
    assert Run.objects.get(pk=a["run_id"]).status == "interrupted"
    assert Run.objects.get(pk=b["run_id"]).status == "running"


def test_the_readme_streaming_example_runs_as_written(live_server, owner, thread, capsys):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = readme.split("Streaming with the unmodified `langgraph-sdk`")[1].split("```python\n")[1].split("```")[0]
    code = code.replace("http://127.0.0.1:8000", live_server.url)
    exec(code, {"ACCESS": str(RefreshToken.for_user(owner).access_token), "THREAD": str(thread.pk)})
    assert capsys.readouterr().out == "Echo: hi there"


def test_a_thread_stream_and_a_join_end_when_the_thread_is_deleted(client, thread, settings):
    """Deleted under them: the thread's stream ends (`end`, status `deleted`) instead of
    sending heartbeats forever, and a join answers `__error__` (its 200 is sent
    already), not an empty state that reads like a success."""
    import threading

    settings.RUN_STREAM_HEARTBEAT_SECONDS = 0.2
    run = client.runs.create(str(thread.pk), "echo", input=ask("later"), after_seconds=3600)
    streamed, joined = [], []
    readers = [threading.Thread(target=lambda: streamed.extend(client.threads.join_stream(str(thread.pk)))),
               threading.Thread(target=lambda: joined.append(client.runs.join(str(thread.pk), run["run_id"])))]
    for reader in readers:
        reader.start()
    time.sleep(0.5)
    client.threads.delete(str(thread.pk))
    for reader in readers:
        reader.join(20)
    assert not any(reader.is_alive() for reader in readers)
    assert streamed[-1].event == "end" and streamed[-1].data == {"thread_id": str(thread.pk), "status": "deleted"}
    assert joined[0]["__error__"]["error"] == "RunDeleted"


def test_deleting_a_thread_or_force_deleting_a_run_ends_the_run_s_stream_at_once(client, thread, project, owner,
                                                                                settings):
    """A run's stream (`join_stream`) ends with `deleted` as soon as its thread is
    deleted, or the run is force-deleted — not at a heartbeat, which here is 60 s."""
    import threading

    settings.RUN_STREAM_HEARTBEAT_SECONDS = 60
    other = services.create_thread(project=project, created_by=owner)
    streams = {}
    for key, on in (("thread", thread), ("run", other)):
        run = client.runs.create(str(on.pk), "echo", input=ask("later"), after_seconds=3600)
        streams[key] = (str(on.pk), run["run_id"], [])
    readers = [threading.Thread(target=lambda t=t, r=r, out=out: out.extend(client.runs.join_stream(t, r)))
               for t, r, out in streams.values()]
    for reader in readers:
        reader.start()
    time.sleep(0.5)
    client.threads.delete(streams["thread"][0])
    client.runs.delete(streams["run"][0], streams["run"][1], params={"force": "true"})
    for reader in readers:
        reader.join(20)
    assert not any(reader.is_alive() for reader in readers)
    for thread_id, run_id, parts in streams.values():
        assert parts[-1].event == "end" and parts[-1].data == {"run_id": run_id, "status": "deleted"}, parts


def test_with_the_bus_unreachable_streams_end_cleanly_and_joins_follow_the_database(client, thread, settings):
    """Redis down: a join answered 200 and then cut its body short (a traceback in the
    server's log). Now a stream sends an `error` event (`StreamUnavailable`) and ends,
    and a join or wait follows the run's status in the database and answers its state
    — for a run that ended, and for one that ends while the join waits."""
    import threading

    done = client.runs.wait(str(thread.pk), "echo", input=ask("before"))
    assert done["messages"][-1]["content"] == "Echo: before"
    finished = client.runs.list(str(thread.pk))[0]
    later = client.runs.create(str(thread.pk), "echo", input=ask("later"), after_seconds=3600)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # the run streams' bus: nothing listens there
    settings.RUN_STREAM_HEARTBEAT_SECONDS = 0.2
    with pytest.raises(Exception) as refused:  # before any event: a 503 saying why
        list(client.runs.join_stream(str(thread.pk), finished["run_id"]))
    assert refused.value.response.status_code == 503 and "Redis" in refused.value.response.json()["detail"]
    streamed = list(client.runs.join_stream(str(thread.pk), finished["run_id"], last_event_id="0-0"))
    assert [p.event for p in streamed] == ["error"] and streamed[0].data["error"] == "StreamUnavailable"
    assert client.runs.join(str(thread.pk), finished["run_id"])["messages"][-1]["content"] == "Echo: before"
    joined = []
    reader = threading.Thread(target=lambda: joined.append(client.runs.join(str(thread.pk), later["run_id"])))
    reader.start()
    time.sleep(0.6)
    assert joined == []  # still waiting on the run, in the database
    client.runs.cancel(str(thread.pk), later["run_id"])
    reader.join(20)
    assert not reader.is_alive() and joined[0]["messages"][-1]["content"] == "Echo: before"
