"""Multitask strategies through the SDK, and their races on PostgreSQL with real
concurrent requests: the database keeps at most one executing run per thread."""

import threading
import time

import httpx
import pytest
from langgraph_sdk.errors import ConflictError

from tests.conftest import wait_for
from threads import services
from threads.models import Checkpoint, Run, Thread

from .test_langgraph_streaming import ask, client, thread  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)
HOLD = ask("approve: tool.hold")  # the echo runtime pauses this run on an approval: it stays running
# An active run for the strategies: a delayed one, pending until long after the test.
# (A run paused on an approval is over for LangGraph: a new run interrupts it.)
LATER = {"input": ask("later"), "after_seconds": 3600}


def statuses(thread):
    return list(Run.objects.filter(thread=thread).order_by("seq").values_list("status", flat=True))


def test_reject_answers_409_and_changes_nothing(client, thread):  # noqa: F811
    client.runs.create(str(thread.pk), "echo", **LATER)
    with pytest.raises(ConflictError):
        client.runs.create(str(thread.pk), "echo", input=ask("no"), multitask_strategy="reject")
    assert statuses(thread) == ["pending"]


def test_interrupt_stops_the_active_run_and_starts_the_new_one(client, thread):  # noqa: F811
    first = client.runs.create(str(thread.pk), "echo", **LATER)
    Checkpoint.objects.create(thread=thread, checkpoint_id="kept", run_id=first["run_id"])
    second = client.runs.create(str(thread.pk), "echo", input=ask("now"), multitask_strategy="interrupt")
    assert statuses(thread) == ["interrupted", "success"]
    assert Checkpoint.objects.filter(run_id=first["run_id"]).exists()  # an interrupt keeps them
    assert client.runs.join(str(thread.pk), second["run_id"])["messages"][-1]["content"] == "Echo: now"


def test_rollback_deletes_the_active_run_with_its_checkpoints(client, thread):  # noqa: F811
    first = client.runs.create(str(thread.pk), "echo", **LATER)
    Checkpoint.objects.create(thread=thread, checkpoint_id="gone", run_id=first["run_id"])
    client.runs.create(str(thread.pk), "echo", input=ask("again"), multitask_strategy="rollback")
    assert not Run.objects.filter(pk=first["run_id"]).exists()
    assert not Checkpoint.objects.filter(checkpoint_id="gone").exists()
    assert statuses(thread) == ["success"]


def test_enqueue_waits_as_pending_and_runs_in_order(client, thread):  # noqa: F811
    first = client.runs.create(str(thread.pk), "echo", **LATER)
    queued = [client.runs.create(str(thread.pk), "echo", input=ask(f"q{i}")) for i in range(3)]
    assert statuses(thread) == ["pending", "pending", "pending", "pending"]
    assert Thread.objects.get(pk=thread.pk).status == "running"  # the active run's, unchanged
    # A stream joined on a queued run gets its events once it starts.
    events = []
    joiner = threading.Thread(target=lambda: events.extend(
        client.runs.join_stream(str(thread.pk), queued[0]["run_id"], stream_mode="values")))
    joiner.start()
    time.sleep(0.5)
    client.runs.cancel(str(thread.pk), first["run_id"])
    joiner.join(20)
    assert statuses(thread) == ["interrupted", "success", "success", "success"]
    answers = [m["content"] for m in client.runs.join(str(thread.pk), queued[-1]["run_id"])["messages"]
               if m["type"] == "ai"]
    assert answers == ["Echo: q0", "Echo: q1", "Echo: q2"]
    assert [e.event for e in events] == ["values", "values", "end"]


def test_on_disconnect_cancel_interrupts_the_run(client, thread, settings):  # noqa: F811
    settings.RUN_STREAM_HEARTBEAT_SECONDS = 0.2
    # A delayed run is active (pending) while its stream waits; a paused one would end the stream.
    stream = client.runs.stream(str(thread.pk), "echo", input=ask("later"), after_seconds=60, on_disconnect="cancel")
    first = next(stream)
    assert first.event == "metadata"
    stream.close()  # the client goes away
    run_id = first.data["run_id"]
    assert wait_for(lambda: Run.objects.get(pk=run_id).status == "interrupted", timeout=10)


def test_on_disconnect_continue_leaves_the_run(client, thread, settings):  # noqa: F811
    settings.RUN_STREAM_HEARTBEAT_SECONDS = 0.2
    stream = client.runs.stream(str(thread.pk), "echo", input=ask("later"), after_seconds=60)
    run_id = next(stream).data["run_id"]
    stream.close()
    time.sleep(1)
    assert Run.objects.get(pk=run_id).status == "pending"  # still due in a minute


# --- races, with real concurrent requests --------------------------------------------------


def race(live_server, owner, requests: list):
    """Send the requests at the same moment; their status codes."""
    from rest_framework_simplejwt.tokens import RefreshToken

    headers = {"Authorization": f"Bearer {RefreshToken.for_user(owner).access_token}"}
    barrier, codes = threading.Barrier(len(requests)), [None] * len(requests)

    def send(i, method, path, body):
        with httpx.Client(base_url=live_server.url, headers=headers, timeout=30) as http:
            barrier.wait()
            codes[i] = http.request(method, path, json=body).status_code

    workers = [threading.Thread(target=send, args=(i, *r)) for i, r in enumerate(requests)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return codes


@pytest.mark.postgres
@pytest.mark.parametrize("strategy", ["reject", "interrupt", "rollback", "enqueue"])
def test_concurrent_creators_follow_the_strategy(live_server, owner, thread, strategy):  # noqa: F811
    path = f"/api/threads/{thread.pk}/runs"
    body = {"assistant_id": "echo", **LATER, "multitask_strategy": strategy}
    codes = race(live_server, owner, [("POST", path, body)] * 6)
    assert set(codes) <= {201, 409}, codes
    runs = statuses(thread)
    if strategy == "reject":
        assert sorted(codes) == [201] + [409] * 5
        assert runs == ["pending"]
    elif strategy == "interrupt":
        assert codes == [201] * 6 and runs.count("interrupted") == 5 and runs.count("pending") == 1
    elif strategy == "rollback":
        assert codes == [201] * 6 and runs == ["pending"]
    else:
        assert codes == [201] * 6 and runs == ["pending"] * 6


@pytest.mark.postgres
def test_concurrent_creators_on_a_paused_thread_leave_one_executing_run(live_server, owner, thread):  # noqa: F811
    """Each new run interrupts the one paused before it: never two executing runs."""
    path = f"/api/threads/{thread.pk}/runs"
    codes = race(live_server, owner, [("POST", path, {"assistant_id": "echo", "input": HOLD})] * 6)
    assert codes == [201] * 6, codes
    assert wait_for(lambda: statuses(thread).count("interrupted") == 5, timeout=20), statuses(thread)
    runs = statuses(thread)
    assert runs.count("running") == 1, runs  # the last one, paused on its approval


@pytest.mark.postgres
def test_cancel_delete_and_create_racing_end_consistently(live_server, owner, thread):  # noqa: F811
    for _ in range(3):
        run = services.create_run(thread=thread, input=HOLD, multitask_strategy="interrupt")
        services.execute_run(run_id=run.pk)
        base = f"/api/threads/{thread.pk}/runs"
        codes = race(live_server, owner, [
            ("POST", f"{base}/{run.pk}/cancel?action=interrupt", None),
            ("POST", f"{base}/{run.pk}/cancel?action=rollback", None),
            ("DELETE", f"{base}/{run.pk}?force=true", None),
            ("POST", base, {"input": HOLD, "multitask_strategy": "rollback"}),
        ])
        assert all(c in (200, 201, 404, 409) for c in codes), codes
        assert codes[3] == 201
        assert statuses(thread).count("running") <= 1
        assert not Run.objects.filter(pk=run.pk, status__in=["pending", "running"]).exists()
