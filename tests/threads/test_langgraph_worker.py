"""Streams across processes: the run executes in a real Celery worker, the live
server streams its events through Redis (PostgreSQL + Redis only)."""

import time

import pytest

import signal

from tests.conftest import start_worker, wait_for, wait_for_worker
from threads.models import Run

from .test_langgraph_stateless import nothing_left
from .test_langgraph_streaming import ask, client, thread  # noqa: F401
from .test_run_options import receiver  # noqa: F401

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_tokens_stream_live_from_the_worker(client, thread, celery_worker_process):  # noqa: F811
    words = " ".join(f"w{i}" for i in range(10))
    arrivals, parts = [], []
    for part in client.runs.stream(str(thread.pk), "echo", input=ask(words), stream_mode=["messages-tuple", "values"]):
        arrivals.append(time.monotonic())
        parts.append(part)
    events = [p.event for p in parts]
    assert events[0] == "metadata" and events[1] == "values" and events[-2:] == ["values", "end"]
    tokens = [(p.data[0]["content"], t) for p, t in zip(parts, arrivals) if p.event == "messages"]
    assert "".join(text for text, _ in tokens) == f"Echo: {words}"
    # Token by token as the worker produces them (0.02 s apart), not in one burst at the end.
    assert tokens[-1][1] - tokens[0][1] >= 0.1
    assert Run.objects.get(pk=parts[0].data["run_id"]).status == "success"


def test_reconnecting_mid_run_loses_nothing_and_repeats_nothing(client, thread, celery_worker_process):  # noqa: F811
    words = " ".join(f"x{i}" for i in range(20))
    stream = client.runs.stream(str(thread.pk), "echo", input=ask(words), stream_mode="messages-tuple",
                                stream_resumable=True)
    seen = [next(stream) for _ in range(4)]
    stream.close()  # the connection drops mid-run
    run_id = seen[0].data["run_id"]
    rest = list(client.runs.join_stream(str(thread.pk), run_id, last_event_id=seen[-1].id))
    whole = list(client.runs.join_stream(str(thread.pk), run_id))  # resumable: the whole stream again
    assert [(p.id, p.event, p.data) for p in seen + rest] == [(p.id, p.event, p.data) for p in whole]
    assert whole[-1].event == "end"
    text = "".join(p.data[0]["content"] for p in whole if p.event == "messages")
    assert text == f"Echo: {words}"


def test_wait_and_join_through_the_worker(client, thread, celery_worker_process):  # noqa: F811
    assert client.runs.wait(str(thread.pk), "echo", input=ask("hi"))["messages"][-1]["content"] == "Echo: hi"
    run = client.runs.create(str(thread.pk), "echo", input=ask("again"))
    assert client.runs.join(str(thread.pk), run["run_id"])["messages"][-1]["content"] == "Echo: again"



def test_stateless_runs_and_their_webhook_through_the_worker(client, account, receiver, celery_worker_process):  # noqa: F811
    """A stateless run executes in the worker; its temporary thread goes once it ended,
    and its webhook is POSTed the final run from the worker."""
    hook = receiver()
    values = client.runs.wait(None, "echo", input=ask("far away"), webhook=hook.url)
    assert values["messages"][-1]["content"] == "Echo: far away"
    streamed = list(client.runs.stream(None, "echo", input=ask("x y"), stream_mode="messages-tuple"))
    assert "".join(p.data[0]["content"] for p in streamed if p.event == "messages") == "Echo: x y"
    batch = client.runs.create_batch([{"assistant_id": "echo", "input": ask(f"b{i}")} for i in range(3)])
    assert len({r["thread_id"] for r in batch}) == 3

    assert wait_for(nothing_left, timeout=30)
    assert wait_for(lambda: hook.bodies, timeout=30)
    ((status, body),) = hook.bodies
    assert status == 200 and body["status"] == "success" and body["kwargs"]["webhook"] == hook.url


def test_a_run_lost_with_its_worker_ends_when_the_worker_starts_again(client, thread, celery_worker_process):  # noqa: F811
    """A worker killed mid-run (SIGKILL, or a supervisor's stop that does not wait)
    left the run `running` for ever, and every later run of the thread `pending`
    behind it. Started again under its name, the worker ends it `error`, and the
    thread takes runs again."""
    env = dict(celery_worker_process.env, ECHO_TOKEN_DELAY="0.5")
    name = f"lost-{time.monotonic_ns()}@localhost"
    celery_worker_process.terminate()
    celery_worker_process.wait(timeout=30)
    slow = start_worker(env, name=name)
    try:
        wait_for_worker(slow)
        run = client.runs.create(str(thread.pk), "echo", input=ask(" ".join(f"w{i}" for i in range(60))))
        assert wait_for(lambda: Run.objects.get(pk=run["run_id"]).status == "running", timeout=30)
        queued = client.runs.create(str(thread.pk), "echo", input=ask("after"), multitask_strategy="enqueue")
        slow.send_signal(signal.SIGKILL)
        slow.wait(timeout=30)
        time.sleep(1)
        lost = Run.objects.get(pk=run["run_id"])
        assert lost.status == "running" and lost.executor == name
    finally:
        if slow.poll() is None:
            slow.kill()
    again = start_worker(env, name=name)
    try:
        wait_for_worker(again)
        assert wait_for(lambda: Run.objects.get(pk=run["run_id"]).status == "error", timeout=30)
        assert "stopped before it finished" in Run.objects.get(pk=run["run_id"]).error
        assert wait_for(lambda: Run.objects.get(pk=queued["run_id"]).status == "success", timeout=60)
        assert client.runs.wait(str(thread.pk), "echo", input=ask("and now"))["messages"][-1]["content"] == "Echo: and now"
    finally:
        again.terminate()
        again.wait(timeout=30)
