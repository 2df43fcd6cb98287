"""Streams across processes: the run executes in a real Celery worker, the live
server streams its events through Redis (PostgreSQL + Redis only)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, start_worker, wait_for, wait_for_worker
from threads import tasks
from threads.models import Checkpoint, Message, Run, WorkerLease

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


def test_deleting_a_thread_stops_its_running_run_in_the_worker(client, thread, celery_worker_process):  # noqa: F811
    """The worker was streaming a long answer; the thread is deleted. The stream ends
    (`deleted`) with the tokens already under way, and the worker stops producing:
    its run log holds a few tokens, not the answer's 400."""
    from threads.streams.bus import get_bus, run_log

    words = " ".join(f"w{i}" for i in range(400))  # 8 s at the echo runtime's 0.02 s a token
    stream = client.runs.stream(str(thread.pk), "echo", input=ask(words), stream_mode="messages-tuple")
    seen = [next(stream) for _ in range(5)]  # the metadata, then tokens: the run is running
    run_id = seen[0].data["run_id"]
    client.threads.delete(str(thread.pk))
    rest = list(stream)
    assert rest[-1].event == "end" and rest[-1].data == {"run_id": run_id, "status": "deleted"}
    assert len(rest) < 100, len(rest)

    def tokens_logged():
        return sum(e.event == "messages" for e in get_bus().read(run_log(run_id), None, 0.1))

    logged = tokens_logged()
    time.sleep(1)  # were the worker still producing, 50 more tokens would be logged meanwhile
    assert tokens_logged() == logged < 100, logged


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
    behind it. Started again under its name, the worker ends it `error` (once the
    killed process's lease, still live at the restart, expired: no beat needed), and
    the thread takes runs again."""
    env = dict(celery_worker_process.env, ECHO_TOKEN_DELAY="0.5", WORKER_LEASE_SECONDS="3")
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


def lease_env(celery_worker_process, settings, seconds=3, **extra):
    """The worker of the fixture stopped (the test starts its own); this process and
    the test's workers under a short lease."""
    settings.WORKER_LEASE_SECONDS = seconds
    celery_worker_process.terminate()
    celery_worker_process.wait(timeout=30)
    return dict(celery_worker_process.env, WORKER_LEASE_SECONDS=str(seconds), **extra)


def words(n, prefix="w"):
    return ask(" ".join(f"{prefix}{i}" for i in range(n)))


def test_a_run_lost_with_a_worker_that_never_comes_back_ends_when_its_lease_expires(  # noqa: F811
        client, thread, celery_worker_process, settings):
    """A worker killed mid-run and never started again (scaled down, its host gone):
    once its lease expired, the beat task ends its run `error`, and the run queued
    behind it starts on another, live worker."""
    env = lease_env(celery_worker_process, settings)
    name = f"gone-{time.monotonic_ns()}@localhost"
    gone = start_worker(dict(env, ECHO_TOKEN_DELAY="0.5"), name=name)
    try:
        wait_for_worker(gone)
        run = client.runs.create(str(thread.pk), "echo", input=words(60))
        assert wait_for(lambda: Run.objects.get(pk=run["run_id"]).status == "running", timeout=30)
        queued = client.runs.create(str(thread.pk), "echo", input=ask("after"), multitask_strategy="enqueue")
        assert tasks.recover_lost_runs() == 0  # alive: its lease is renewed
        gone.send_signal(signal.SIGKILL)
        gone.wait(timeout=30)
    finally:
        if gone.poll() is None:
            gone.kill()
    lost = Run.objects.get(pk=run["run_id"])
    assert lost.status == "running" and lost.executor == name
    assert WorkerLease.objects.get(pk=lost.executor_lease).name == name
    other = start_worker(env)
    try:
        wait_for_worker(other)
        started = time.monotonic()
        assert wait_for(tasks.recover_lost_runs, timeout=30) == 1  # the beat task, once the lease expired
        assert time.monotonic() - started < 10
        lost.refresh_from_db()
        assert lost.status == "error" and "stopped before it finished (its lease expired)" in lost.error
        assert wait_for(lambda: Run.objects.get(pk=queued["run_id"]).status == "success", timeout=60)
        after = Run.objects.get(pk=queued["run_id"])
        assert after.executor not in ("", name) and after.executor_lease != lost.executor_lease
        assert client.runs.wait(str(thread.pk), "echo", input=ask("and now"))["messages"][-1]["content"] == "Echo: and now"
        assert tasks.recover_lost_runs() == 0
    finally:
        other.terminate()
        other.wait(timeout=30)


def test_a_worker_frozen_past_its_lease_cannot_bring_its_ended_run_back(  # noqa: F811
        client, thread, celery_worker_process, settings):
    """A worker that stops renewing without dying (frozen with SIGSTOP past its lease):
    its run ends `error` and the queue moves on; woken up, the worker stops producing
    for it and what it records is dropped: the ended run stays as it was."""
    env = lease_env(celery_worker_process, settings)
    name = f"frozen-{time.monotonic_ns()}@localhost"
    frozen = start_worker(dict(env, ECHO_TOKEN_DELAY="0.3"), name=name)
    other = None
    try:
        wait_for_worker(frozen)
        run = client.runs.create(str(thread.pk), "echo", input=words(40))
        assert wait_for(lambda: Run.objects.get(pk=run["run_id"]).status == "running", timeout=30)
        queued = client.runs.create(str(thread.pk), "echo", input=ask("after"), multitask_strategy="enqueue")
        frozen.send_signal(signal.SIGSTOP)
        other = start_worker(env)
        wait_for_worker(other)
        assert wait_for(tasks.recover_lost_runs, timeout=30) == 1
        assert wait_for(lambda: Run.objects.get(pk=queued["run_id"]).status == "success", timeout=60)
        ended = Run.objects.get(pk=run["run_id"])
        assert ended.status == "error" and "(its lease expired)" in ended.error
        messages = Message.objects.filter(thread_id=thread.pk).count()
        frozen.send_signal(signal.SIGCONT)
        log = ROOT / "var" / "test-worker.log"
        assert wait_for(lambda: f"The lease of worker {name} lapsed" in log.read_text(errors="replace"), timeout=30)
        time.sleep(3)  # the frozen runtime wakes up, sees its run cancelled, and records what it has
        after = Run.objects.get(pk=run["run_id"])
        assert (after.status, after.error, after.result, after.completed_at, after.output_tokens) == (
            ended.status, ended.error, ended.result, ended.completed_at, ended.output_tokens)
        assert Message.objects.filter(thread_id=thread.pk).count() == messages
        assert not Checkpoint.objects.filter(run_id=run["run_id"]).exists()
        assert tasks.recover_lost_runs() == 0
    finally:
        for worker in (frozen, other):
            if worker is not None:
                if worker is frozen and worker.poll() is None:
                    worker.send_signal(signal.SIGCONT)
                worker.terminate()
                worker.wait(timeout=30)


def test_a_live_worker_s_long_run_is_never_ended(client, thread, celery_worker_process, settings):  # noqa: F811
    """A run far longer than the lease: its worker renews the lease while the run
    executes (in the solo pool's only thread), so the beat task ends nothing."""
    env = lease_env(celery_worker_process, settings, seconds=2, ECHO_TOKEN_DELAY="0.4")
    worker = start_worker(env)
    try:
        wait_for_worker(worker)
        run = client.runs.create(str(thread.pk), "echo", input=words(20))
        assert wait_for(lambda: Run.objects.get(pk=run["run_id"]).status == "running", timeout=30)
        checks, deadline = 0, time.monotonic() + 6  # three leases
        while time.monotonic() < deadline:
            assert tasks.recover_lost_runs() == 0
            assert Run.objects.get(pk=run["run_id"]).status == "running"
            checks += 1
            time.sleep(0.25)
        assert checks >= 10
        assert wait_for(lambda: Run.objects.get(pk=run["run_id"]).status == "success", timeout=60)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_a_second_worker_under_the_same_name_leaves_the_first_one_s_run_alone(  # noqa: F811
        client, thread, celery_worker_process, settings):
    """Two workers under one node name: the second one's start ends nothing of the
    first's live run (each process holds its own lease), and both say so in their log."""
    env = lease_env(celery_worker_process, settings, ECHO_TOKEN_DELAY="0.3")
    name = f"twin-{time.monotonic_ns()}@localhost"
    first = start_worker(env, name=name)
    second = None
    try:
        wait_for_worker(first)
        run = client.runs.create(str(thread.pk), "echo", input=words(100))
        assert wait_for(lambda: Run.objects.get(pk=run["run_id"]).status == "running", timeout=30)
        second = start_worker(env, name=name)
        assert wait_for(lambda: WorkerLease.objects.filter(name=name).count() == 2, timeout=60)
        time.sleep(4.5)  # past the second's recheck of its name's runs (a lease and a beat)
        assert tasks.recover_lost_runs() == 0
        assert Run.objects.get(pk=run["run_id"]).status == "running"
        assert wait_for(lambda: Run.objects.get(pk=run["run_id"]).status == "success", timeout=60)
        log = (ROOT / "var" / "test-worker.log").read_text(errors="replace")
        assert f"Another worker process under the name {name}" in log
        assert f"Two workers run under the name {name}" in log
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=30)


def pool_processes(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as children:
            found += [int(child) for child in children.read().split()]
    return found


def test_a_run_whose_pool_process_is_killed_ends_while_the_worker_lives(  # noqa: F811
        client, thread, celery_worker_process, settings):
    """A prefork pool process killed mid-run (the out-of-memory killer takes it, not
    the worker's main process): each pool process holds a lease of its own, so its run
    ends once that lease expires, and the worker, still up, runs the next one."""
    env = lease_env(celery_worker_process, settings, ECHO_TOKEN_DELAY="0.5")
    name = f"prefork-{time.monotonic_ns()}@localhost"
    (ROOT / "var").mkdir(exist_ok=True)
    log = open(ROOT / "var" / "test-worker.log", "ab")
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "prefork", "-c", "1",
                               "--loglevel=INFO", "-n", name], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_worker(worker)
        run = client.runs.create(str(thread.pk), "echo", input=words(60))
        assert wait_for(lambda: Run.objects.get(pk=run["run_id"]).status == "running", timeout=30)
        lease = WorkerLease.objects.get(pk=Run.objects.get(pk=run["run_id"]).executor_lease)
        (pool_process,) = pool_processes(worker.pid)
        assert lease.name == f"{name} process {pool_process}"  # the pool process's own lease
        os.kill(pool_process, signal.SIGKILL)
        assert wait_for(tasks.recover_lost_runs, timeout=30) == 1  # once that lease expired
        lost = Run.objects.get(pk=run["run_id"])
        assert lost.status == "error" and "its lease expired" in lost.error and worker.poll() is None
        after = client.runs.wait(str(thread.pk), "echo", input=ask("next"))  # the worker's new pool process
        assert after["messages"][-1]["content"] == "Echo: next"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
