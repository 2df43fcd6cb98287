"""Worker leases: the runs of a worker that stopped renewing its lease end `error`
(beat), never those of a live worker, a paused run or an in-process one; a late
result from a worker whose run was ended is dropped. Service-level, on both
databases; tests/threads/test_langgraph_worker.py kills real workers."""

import logging
import uuid
from datetime import timedelta

import pytest
from django.db.models.functions import Now

import config.celery
from threads import services, tasks
from threads.models import Approval, Checkpoint, Message, Run, Thread, WorkerLease
from threads.runtime import RuntimeResult
from threads.services.runs import record_result, recover_lost_runs, requeue_pending_runs, resume_run
from threads.streams.bus import get_bus
from threads.services.workers import Heartbeat, prune_leases, renew_lease, take_lease

from .test_runs import say, thread  # noqa: F401

pytestmark = pytest.mark.django_db


def lease(name="w1@host", *, age: float = 0) -> WorkerLease:
    """A worker's lease, last renewed `age` seconds ago (by the database's clock)."""
    held = WorkerLease.objects.create(name=name)
    WorkerLease.objects.filter(pk=held.pk).update(renewed_at=Now() - timedelta(seconds=age),
                                                 started_at=Now() - timedelta(seconds=age + 60))
    held.refresh_from_db()
    return held


def running(thread, held: WorkerLease | None, text="hello", **extra) -> Run:  # noqa: F811
    """A run a worker started under `held` and is executing (or lost)."""
    say(thread, text)
    run = services.create_run(thread=thread)  # no commit in these tests: never sent
    Run.objects.filter(pk=run.pk).update(status="running", executor=held.name if held else "",
                                         executor_lease=held.pk if held else None, **extra)
    return Run.objects.get(pk=run.pk)


@pytest.fixture
def as_worker(monkeypatch):
    """This process as the worker `name` under `held` (what celeryd_init sets in a worker)."""
    def become(held: WorkerLease):
        monkeypatch.setitem(config.celery._worker, "name", held.name)
        monkeypatch.setitem(config.celery._worker, "lease", held.pk)
    return become


def test_the_runs_of_a_worker_whose_lease_expired_end_and_the_queue_behind_them_starts(
        thread, settings, django_capture_on_commit_callbacks):  # noqa: F811
    settings.WORKER_LEASE_SECONDS = 30
    lost = running(thread, lease(age=31))
    queued = services.create_run(thread=thread, input={"messages": [{"role": "user", "content": "next"}]},
                                 multitask_strategy="enqueue")
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.recover_lost_runs() == 1  # the beat task
    lost.refresh_from_db()
    assert lost.status == "error" and lost.completed_at is not None
    assert lost.error == "The worker executing it (w1@host) stopped before it finished (its lease expired); send it again."
    assert get_bus().is_cancelled(lost.pk)  # a worker only slow stops producing for it
    assert Run.objects.get(pk=queued.pk).status == "success"
    assert Message.objects.filter(thread=thread).order_by("-seq").first().text == "Echo: next"
    assert Thread.objects.get(pk=thread.pk).status == "idle"
    assert recover_lost_runs() == 0


def test_a_run_under_a_live_lease_is_never_ended(thread, project, owner, settings):  # noqa: F811
    """A lease renewed within WORKER_LEASE_SECONDS is a live worker: its run goes on,
    however long it has run; a second worker under the same name (a live lease) keeps
    its run while the runs of the name's expired lease end."""
    settings.WORKER_LEASE_SECONDS = 30
    alive = running(thread, lease(age=29), started_at=Now() - timedelta(days=1))
    other = services.create_thread(project=project, created_by=owner)
    dead = running(other, lease(age=40))
    assert recover_lost_runs() == 1
    assert Run.objects.get(pk=alive.pk).status == "running"
    assert Run.objects.get(pk=dead.pk).status == "error"
    assert recover_lost_runs(executor="w1@host") == 0  # the name's start: the live twin's run stays


def test_a_paused_run_is_left_alone_and_its_decision_waits_for_any_worker(thread, settings, as_worker):  # noqa: F811
    """A run paused on an approval executes nowhere: its worker's lease expiring ends
    nothing. Decided, it waits for a worker to resume it, lost with none."""
    settings.WORKER_LEASE_SECONDS = 30
    held = lease(age=0)
    as_worker(held)
    say(thread, "approve: tool.call")
    run = services.create_run(thread=thread)
    services.execute_run(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "running" and (run.executor, run.executor_lease) == (held.name, held.pk)
    WorkerLease.objects.filter(pk=held.pk).update(renewed_at=Now() - timedelta(seconds=60))
    assert recover_lost_runs() == 0 and recover_lost_runs(executor=held.name) == 0
    approval = Approval.objects.get(run=run)
    services.resolve_approval(thread=thread, approval_id=approval.pk, decision="approve")  # no commit: not resumed
    run.refresh_from_db()
    assert run.status == "running" and (run.executor, run.executor_lease) == ("", None)
    assert recover_lost_runs() == 0 and recover_lost_runs(executor=held.name) == 0
    second = lease("w2@host")
    as_worker(second)
    resume_run(run_id=run.pk, approval_id=approval.pk)  # what the task does, on another worker
    run.refresh_from_db()
    assert run.status == "success" and run.executor == "w2@host"


def test_a_late_result_of_a_run_ended_as_lost_is_dropped(thread, settings):  # noqa: F811
    """The worker was only slow (its lease lapsed): its run ended `error`, the queue
    moved on; what the worker records afterwards changes nothing."""
    settings.WORKER_LEASE_SECONDS = 30
    held = lease(age=31)
    run = running(thread, held)
    assert recover_lost_runs() == 1
    before = Run.objects.get(pk=run.pk)
    messages = Message.objects.filter(thread=thread).count()
    late = record_result(run_id=run.pk, result=RuntimeResult(
        status="success", messages=[[{"type": "text", "text": "too late"}]], result="too late",
        checkpoint={"channel_values": {}}, output_tokens=2))
    assert late.status == "error"
    after = Run.objects.get(pk=run.pk)
    assert (after.status, after.result, after.error, after.output_tokens, after.completed_at) == (
        before.status, before.result, before.error, before.output_tokens, before.completed_at)
    assert Message.objects.filter(thread=thread).count() == messages
    assert not Checkpoint.objects.filter(run=run).exists()
    # A resume arriving late does not take it back either.
    resume_run(run_id=run.pk, approval_id=uuid.uuid4())
    assert Run.objects.get(pk=run.pk).executor == held.name


def test_a_run_found_lost_is_checked_again_under_its_lock(thread, settings):  # noqa: F811
    """Between the query and the lock the run may have been resumed by another worker
    or its worker renewed its lease: then it is not ended."""
    settings.WORKER_LEASE_SECONDS = 30
    held = lease(age=31)
    run = running(thread, held)
    error = RuntimeResult(status="error", error="lost")
    assert record_result(run_id=run.pk, result=error, lost=("w9@host", held.pk)).status == "running"
    WorkerLease.objects.filter(pk=held.pk).update(renewed_at=Now())
    assert record_result(run_id=run.pk, result=error, lost=(held.name, held.pk)).status == "running"
    WorkerLease.objects.filter(pk=held.pk).update(renewed_at=Now() - timedelta(seconds=31))
    assert record_result(run_id=run.pk, result=error, lost=(held.name, held.pk)).status == "error"


def test_in_process_runs_and_runs_before_leases(thread, project, owner, settings):  # noqa: F811
    """No worker (the embedded defaults): nothing to end. A run started before leases
    (no lease recorded) ends only when its worker starts again under its name."""
    settings.WORKER_LEASE_SECONDS = 30
    in_process = running(thread, None)
    assert recover_lost_runs() == 0 and recover_lost_runs(executor="") == 0
    assert tasks.recover_lost_runs() == 0
    assert Run.objects.get(pk=in_process.pk).status == "running"
    other = services.create_thread(project=project, created_by=owner)
    say(other, "old")
    old = services.create_run(thread=other)
    Run.objects.filter(pk=old.pk).update(status="running", executor="w1@host")
    assert recover_lost_runs() == 0
    assert recover_lost_runs(executor="w2@host") == 0
    assert recover_lost_runs(executor="w1@host") == 1
    assert "stopped before it finished (it started again)" in Run.objects.get(pk=old.pk).error


def test_leases_are_taken_renewed_and_pruned(thread, settings, caplog):  # noqa: F811
    settings.WORKER_LEASE_SECONDS = 30
    caplog.set_level(logging.WARNING, logger="threads.services.workers")
    first, others = take_lease(lease_id=uuid.uuid4(), name="w1@host")
    assert others == [] and first.renewed_at is not None and not caplog.records
    # A second start under the name while the first lease is live: said.
    second, others = take_lease(lease_id=uuid.uuid4(), name="w1@host")
    assert others == [first.pk] and "Another worker process under the name w1@host" in caplog.text
    caplog.clear()
    # Both renewing: a second worker under one name, said once each.
    assert renew_lease(first, known=set()) == {second.pk}
    assert renew_lease(first, known={second.pk}) == {second.pk}
    assert caplog.text.count("Two workers run under the name w1@host") == 1
    # A lapsed lease is renewed again and said.
    caplog.clear()
    WorkerLease.objects.filter(pk=first.pk).update(renewed_at=Now() - timedelta(seconds=31))
    renew_lease(first, known={second.pk})
    assert "The lease of worker w1@host lapsed" in caplog.text
    assert not WorkerLease.objects.filter(pk=first.pk, renewed_at__lt=Now() - timedelta(seconds=30)).exists()
    # A lease never taken (the database was down at the start) is taken at the first renewal.
    missing = WorkerLease(pk=uuid.uuid4(), name="w3@host")
    assert renew_lease(missing, known=set()) == set()
    assert WorkerLease.objects.get(pk=missing.pk).started_at == missing.started_at
    # Pruned a week after expiry, unless a running run names it.
    gone, kept = lease("w4@host", age=8 * 24 * 3600), lease("w5@host", age=8 * 24 * 3600)
    running(thread, kept)
    assert prune_leases() == 1
    assert not WorkerLease.objects.filter(pk=gone.pk).exists() and WorkerLease.objects.filter(pk=kept.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_renews_the_lease(settings):
    settings.WORKER_LEASE_SECONDS = 2
    held, _ = take_lease(lease_id=uuid.uuid4(), name="w1@host")
    WorkerLease.objects.filter(pk=held.pk).update(renewed_at=Now() - timedelta(seconds=10))
    heartbeat = Heartbeat(held)
    heartbeat.start()
    try:
        from tests.conftest import wait_for

        assert wait_for(lambda: not WorkerLease.objects.filter(
            pk=held.pk, renewed_at__lt=Now() - timedelta(seconds=2)).exists(), timeout=5)
    finally:
        heartbeat.stop()
        heartbeat.join(timeout=5)
    assert not heartbeat.is_alive()


def test_a_decided_run_whose_resume_was_lost_is_resumed_again_once(
        thread, settings, as_worker, django_capture_on_commit_callbacks):  # noqa: F811
    """The resume message of a decision is lost (broker down at its commit, a worker
    lost before it started): the run waits for a worker with no lease, so none can end
    it; the requeue (beat) sends it again, and the original arriving late does nothing."""
    settings.WORKER_LEASE_SECONDS = 30
    as_worker(lease(age=0))
    say(thread, "approve: tool.call")
    run = services.create_run(thread=thread)
    services.execute_run(run_id=run.pk)
    approval = Approval.objects.get(run=run)
    with django_capture_on_commit_callbacks(execute=False):  # the resume message is lost
        services.resolve_approval(thread=thread, approval_id=approval.pk, decision="approve")
    assert requeue_pending_runs(older_than_seconds=3600) == 0  # decided just now: a message may be on its way
    assert requeue_pending_runs(older_than_seconds=0) == 1  # resumed, in-process here
    run.refresh_from_db()
    assert run.status == "success"
    answered = Message.objects.filter(thread=thread).count()
    resume_run(run_id=run.pk, approval_id=approval.pk)  # the original message, late
    assert Message.objects.filter(thread=thread).count() == answered
    assert requeue_pending_runs(older_than_seconds=0) == 0


def test_a_second_resume_of_a_decided_run_finds_it_taken(thread, settings, as_worker):  # noqa: F811
    settings.WORKER_LEASE_SECONDS = 30
    first = lease(age=0)
    run = running(thread, None)
    Run.objects.filter(pk=run.pk).update(executor="", executor_lease=None)
    approval = Approval.objects.create(thread=thread, run=run, tool_name="t", status="approved")
    as_worker(first)
    Run.objects.filter(pk=run.pk).update(executor=first.name, executor_lease=first.pk)  # claimed by the first resume
    as_worker(lease("w2@host"))
    assert resume_run(run_id=run.pk, approval_id=approval.pk).executor == first.name  # taken: left to it


def test_a_run_under_a_lease_with_no_row_ends_once_older_than_a_lease(thread, settings):  # noqa: F811
    """Its worker could not take its lease (the database unreachable at start) and was
    lost before its heartbeat did, or the row was deleted by hand: the run ends once
    it has been going longer than a lease; a younger one is left (the row may come)."""
    settings.WORKER_LEASE_SECONDS = 30
    ghost = uuid.uuid4()
    run = running(thread, None, started_at=Now() - timedelta(seconds=5))
    Run.objects.filter(pk=run.pk).update(executor="w9@host", executor_lease=ghost)
    assert recover_lost_runs() == 0
    Run.objects.filter(pk=run.pk).update(started_at=Now() - timedelta(seconds=31))
    assert recover_lost_runs() == 1 and Run.objects.get(pk=run.pk).status == "error"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_whose_database_connection_was_cut_while_it_ran_still_ends(thread, settings):  # noqa: F811
    """PostgreSQL cut the worker's connection while the runtime worked (a restart, a
    proxy's idle timeout): the outcome is written on a new connection, not lost — a
    run left `running` under its worker's live lease would have nothing to end it."""
    import psycopg
    from django.db import connection

    from threads.services.runs import record_outcome

    run = running(thread, lease(age=0))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    params = {k: v for k, v in connection.get_connection_params().items() if k in ("host", "port", "user", "dbname")}
    with psycopg.connect(**params, autocommit=True) as other:  # the cut, while the runtime worked
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    done = record_outcome(run_id=run.pk, result=RuntimeResult(
        status="success", messages=[[{"type": "text", "text": "made it"}]], result="made it"))
    assert done.status == "success" and Run.objects.get(pk=run.pk).result == "made it"
