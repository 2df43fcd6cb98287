"""Runs: one active per thread, executed through a runtime, cancelled with LangGraph's meanings."""

import threading

import pytest
from django.db import connection

from config.errors import Conflict
from projects.models import Role
from tests.conftest import client_for, wait_for
from threads import services
from threads.models import Approval, Checkpoint, CheckpointWrite, Message, Run, Thread, ThreadStatus
from threads.runtime import Runtime, RuntimeResult

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(project, owner):
    return services.create_thread(project=project, created_by=owner)


def url(thread, *parts):
    return "/".join([f"/api/threads/{thread.pk}", *[str(p) for p in parts]])


def say(thread, text):
    return services.post_message(thread=thread, role="user", content=[{"type": "text", "text": text}])


def start_run(api, thread, callbacks_fixture, **body):
    """POST a run and let it execute after the commit, as the embedded defaults do."""
    with callbacks_fixture(execute=True):
        r = api.post(url(thread, "runs"), body, format="json")
    assert r.status_code == 201, r.content
    return Run.objects.get(pk=r.json()["run_id"])


# --- executing through the echo runtime ----------------------------------------------


def test_run_completes_through_echo_runtime_in_process(api, thread, django_capture_on_commit_callbacks):
    say(thread, "ping")
    run = start_run(api, thread, django_capture_on_commit_callbacks, metadata={"k": "v"})
    assert run.status == "success" and run.result == "Echo: ping" and run.error is None
    assert run.seq == 1 and run.metadata == {"k": "v"} and run.runtime == "echo"
    assert run.start_message_seq == 2 and run.end_message_seq == 2
    assert run.input_tokens == 1 and run.output_tokens == 2
    assert run.started_at is not None and run.completed_at >= run.started_at
    answer = Message.objects.get(thread=thread, seq=2)
    assert answer.role == "assistant" and answer.run_id == run.pk and answer.text == "Echo: ping"
    assert Checkpoint.objects.filter(run=run).count() == 1
    thread.refresh_from_db()
    assert thread.status == "idle" and thread.last_run_seq == 1
    body = api.get(url(thread, "runs", run.pk)).json()
    assert body["status"] == "success" and body["token_usage"] == {"input_tokens": 1, "output_tokens": 2}
    say(thread, "again")
    second = start_run(api, thread, django_capture_on_commit_callbacks)
    assert second.seq == 2 and second.result == "Echo: again"
    assert Checkpoint.objects.get(run=second).parent_checkpoint_id == Checkpoint.objects.get(run=run).checkpoint_id


def test_a_failing_runtime_records_the_error(api, thread, django_capture_on_commit_callbacks):
    say(thread, "fail: boom")
    run = start_run(api, thread, django_capture_on_commit_callbacks)
    assert run.status == "error" and run.error == "boom" and run.completed_at is not None
    assert not Message.objects.filter(thread=thread, role="assistant").exists()
    thread.refresh_from_db()
    assert thread.status == "idle"


def test_a_runtime_can_pause_the_run_on_an_approval(api, thread, django_capture_on_commit_callbacks):
    say(thread, "approve: sandbox.exec")
    run = start_run(api, thread, django_capture_on_commit_callbacks)
    assert run.status == "running"
    assert Approval.objects.get(run=run).tool_name == "sandbox.exec"
    thread.refresh_from_db()
    assert thread.status == "awaiting"


class CancelledMidwayRuntime(Runtime):
    """A runtime whose run the user interrupts while it is working."""

    def execute(self, *, run, history):
        services.cancel_run(thread=run.thread, run_id=run.pk, action="interrupt")
        return RuntimeResult(messages=[[{"type": "text", "text": "too late"}]], result="too late", checkpoint={})


def test_a_cancel_while_the_runtime_works_wins(thread, settings):
    settings.THREAD_RUNTIMES = {**settings.THREAD_RUNTIMES, "midway": f"{__name__}.CancelledMidwayRuntime"}
    run = services.create_run(thread=thread, runtime="midway")
    services.execute_run(run_id=run.pk)  # what the task does
    run.refresh_from_db()
    assert run.status == "interrupted" and run.result is None
    assert not Message.objects.filter(thread=thread).exists() and not Checkpoint.objects.exists()
    thread.refresh_from_db()
    assert thread.status == "idle"


def test_a_run_executes_once(thread):
    say(thread, "once")
    run = services.create_run(thread=thread)  # no commit in this test: not sent yet
    services.execute_run(run_id=run.pk)
    services.execute_run(run_id=run.pk)  # a duplicate delivery
    assert Message.objects.filter(thread=thread, role="assistant").count() == 1


def test_a_run_left_pending_is_sent_again(thread):
    """The broker was down when the run was created: the periodic requeue executes it."""
    say(thread, "late")
    run = services.create_run(thread=thread)  # no commit in this test: never sent
    assert services.requeue_pending_runs(older_than_seconds=3600) == 0
    assert services.requeue_pending_runs(older_than_seconds=0) == 1
    run.refresh_from_db()
    assert run.status == "success" and run.result == "Echo: late"
    assert services.requeue_pending_runs(older_than_seconds=0) == 0


@pytest.mark.worker
def test_run_completes_in_a_real_worker(celery_worker_process, project, owner):
    thread = services.create_thread(project=project, created_by=owner)
    say(thread, "from the worker")
    run = services.create_run(thread=thread)
    done = wait_for(lambda: Run.objects.get(pk=run.pk).status == "success", timeout=30)
    assert done, Run.objects.get(pk=run.pk).status
    assert Message.objects.get(thread=thread, seq=2).text == "Echo: from the worker"
    assert Thread.objects.get(pk=thread.pk).status == "idle"


# --- creating and listing ------------------------------------------------------------


def test_reject_strategy_and_thread_status_follows(api, thread):
    r = api.post(url(thread, "runs"), {}, format="json")  # not executed: no commit in this test
    assert r.status_code == 201 and r.json()["status"] == "pending"
    thread.refresh_from_db()
    assert thread.status == "running"
    r2 = api.post(url(thread, "runs"), {"multitask_strategy": "reject"}, format="json")
    assert r2.status_code == 409 and r2.json()["detail"]
    assert len(api.get(url(thread, "runs"), {"status": "pending"}).json()) == 1
    assert api.get(url(thread, "runs"), {"status": "success"}).json() == []
    assert api.get(url(thread, "runs"), {"status": "nope"}).status_code == 422
    assert api.get(url(thread, "runs"), {"limit": 0}).status_code == 422


def test_a_closed_thread_takes_no_run(api, thread):
    Thread.objects.filter(pk=thread.pk).update(status=ThreadStatus.CLOSED)
    r = api.post(url(thread, "runs"), {}, format="json")
    assert r.status_code == 409 and r.json()["detail"]
    assert not Run.objects.exists()


def test_bad_run_requests(api, thread, other_account):
    assert api.post(url(thread, "runs"), {"runtime": "nope"}, format="json").status_code == 422
    assert api.post(url(thread, "runs"), {"agent_id": "nope"}, format="json").status_code == 422
    foreign = other_account.agents.create(name="theirs")
    assert api.post(url(thread, "runs"), {"agent_id": str(foreign.pk)}, format="json").status_code == 404
    assert api.get(url(thread, "runs", "nope")).status_code == 422
    assert not Run.objects.exists()


def test_run_access(anon, thread, account, member_of):
    assert anon.post(url(thread, "runs"), {}, format="json").status_code == 401
    viewer = client_for(member_of(account, Role.VIEWER))
    assert viewer.post(url(thread, "runs"), {}, format="json").status_code == 403
    assert viewer.get(url(thread, "runs")).status_code == 200


@pytest.mark.parametrize("size", [1, 60])
def test_listing_runs_costs_the_same_queries_whatever_the_page_size(api, thread, django_assert_num_queries, size):
    Run.objects.bulk_create(Run(thread=thread, seq=i + 1, status="success") for i in range(size))
    # the authenticated user, the thread, the page
    with django_assert_num_queries(3):
        results = api.get(url(thread, "runs"), {"limit": 500}).json()
    assert [r["seq"] for r in results] == list(range(size, 0, -1))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_run_creations_give_one_run_and_409s(project, owner):
    thread = services.create_thread(project=project, created_by=owner)
    say(thread, "approve: tool.call")  # the run that wins pauses on an approval: it stays active
    outcomes, barrier = [], threading.Barrier(5)

    def create():
        try:
            barrier.wait()
            services.create_run(thread=thread)
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")
        except Exception as exc:
            outcomes.append(repr(exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=create) for _ in range(5)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(outcomes) == ["conflict"] * 4 + ["created"]
    assert Run.objects.filter(thread=thread).count() == 1


# --- cancelling ----------------------------------------------------------------------


def test_interrupt_keeps_checkpoints(api, thread):
    run = services.create_run(thread=thread)
    Checkpoint.objects.create(thread=thread, checkpoint_id="c1", run=run)
    r = api.post(url(thread, "runs", run.pk, "cancel") + "?action=interrupt")
    assert r.status_code == 200 and r.json()["status"] == "interrupted"
    assert Checkpoint.objects.filter(run=run).count() == 1
    thread.refresh_from_db()
    assert thread.status == "idle"
    assert api.post(url(thread, "runs", run.pk, "cancel")).status_code == 409  # no longer active
    assert api.post(url(thread, "runs", run.pk, "cancel") + "?action=explode").status_code == 422


def test_cancelling_a_run_of_another_thread_is_404(api, thread, project, owner):
    other = services.create_thread(project=project, created_by=owner)
    run = services.create_run(thread=other)
    assert api.post(url(thread, "runs", run.pk, "cancel") + "?action=rollback").status_code == 404
    assert Run.objects.get(pk=run.pk).status == "pending"


def test_rollback_deletes_the_run_and_its_checkpoints(api, thread, django_capture_on_commit_callbacks):
    say(thread, "first")
    done = start_run(api, thread, django_capture_on_commit_callbacks)
    before = Checkpoint.objects.get(run=done).checkpoint_id
    run = services.create_run(thread=thread)
    cp = services.put_checkpoint(thread=thread, checkpoint_id="c2", parent_checkpoint_id=before, checkpoint={},
                                 run=run, writes=[{"task_id": "t", "idx": 0, "channel": "c"}])
    message = services.post_message(thread=thread, role="assistant", content=[{"type": "text", "text": "partial"}],
                                    run=run)
    assert api.get(url(thread, "state")).json()["checkpoint"]["checkpoint_id"] == "c2"
    r = api.post(url(thread, "runs", run.pk, "cancel") + "?action=rollback")
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert not Run.objects.filter(pk=run.pk).exists()
    assert not Checkpoint.objects.filter(pk=cp.pk).exists() and not CheckpointWrite.objects.exists()
    assert api.get(url(thread, "state")).json()["checkpoint"]["checkpoint_id"] == before  # back to before the run
    message.refresh_from_db()
    assert message.run_id is None  # messages stay, detached
    thread.refresh_from_db()
    assert thread.status == "idle"


def test_bulk_cancel(api, thread, project, owner):
    services.create_run(thread=thread)
    assert api.post(url(thread, "runs", "cancel"), {"status": "running"}, format="json").json()["cancelled_count"] == 0
    thread.refresh_from_db()
    assert thread.status == "running"
    r = api.post(url(thread, "runs", "cancel"), {"status": "pending"}, format="json")
    assert r.status_code == 200 and r.json()["cancelled_count"] == 1
    thread.refresh_from_db()
    assert thread.status == "idle"
    assert api.post(url(thread, "runs", "cancel") + "/", {}, format="json").json()["cancelled_count"] == 0
    assert api.post(url(thread, "runs", "cancel"), {"status": "bogus"}, format="json").status_code == 422


def test_a_run_that_pauses_with_runs_queued_behind_it_ends_interrupted(thread):
    """A run that reaches an interrupt is over (as LangGraph's are), so a queue behind
    it never waits on a person: it ends `interrupted`, opens no approval, and the next
    run starts."""
    say(thread, "approve: tool.call")
    paused = services.create_run(thread=thread)
    queued = services.create_run(thread=thread, input={"messages": [{"role": "user", "content": "next"}]},
                                 multitask_strategy="enqueue")
    services.execute_run(run_id=paused.pk)
    assert Run.objects.get(pk=paused.pk).status == "interrupted"
    assert not Approval.objects.filter(thread=thread).exists()
    services.execute_run(run_id=queued.pk)  # what advance_queue scheduled
    assert Run.objects.get(pk=queued.pk).status == "success"
    assert Message.objects.filter(thread=thread).order_by("-seq").first().text == "Echo: next"
    thread.refresh_from_db()
    assert thread.status == ThreadStatus.IDLE


def test_a_paused_run_alone_waits_on_its_approval(thread):
    say(thread, "approve: tool.call")
    paused = services.create_run(thread=thread)
    services.execute_run(run_id=paused.pk)
    assert Run.objects.get(pk=paused.pk).status == "running"
    assert Approval.objects.get(thread=thread).status == "pending"


def test_a_run_from_a_checkpoint_gone_before_it_starts_fails_and_the_queue_moves_on(thread):
    """Checked when created, the checkpoint may go before the run starts (a prune, a
    rollback): the run ends `error` instead of staying `pending` at the queue's head."""
    say(thread, "one")
    first = services.create_run(thread=thread)
    services.execute_run(run_id=first.pk)
    say(thread, "two")
    services.execute_run(run_id=services.create_run(thread=thread).pk)
    older = Checkpoint.objects.filter(thread=thread).order_by("id").first()
    forked = services.create_run(thread=thread, input={"messages": [{"role": "user", "content": "fork"}]},
                                 kwargs={"checkpoint_id": older.checkpoint_id})
    behind = services.create_run(thread=thread, input={"messages": [{"role": "user", "content": "after"}]},
                                 multitask_strategy="enqueue")
    older.delete()
    services.execute_run(run_id=forked.pk)
    forked.refresh_from_db()
    assert forked.status == "error" and "is gone" in forked.error
    services.execute_run(run_id=behind.pk)
    assert Run.objects.get(pk=behind.pk).status == "success"
