"""Messages, checkpoints, runs and deleting a run (issue: runs)."""

import threading

import pytest
from django.db import connection

from projects.models import Role
from tests.conftest import client_for, wait_for
from threads import services
from threads.models import Approval, Checkpoint, CheckpointWrite, Message, Run, Thread

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(project, owner):
    return services.create_thread(project=project, created_by=owner)


def url(thread, *parts):
    return "/".join([f"/api/threads/{thread.pk}", *[str(p) for p in parts]])


def post_user_message(api, thread, text="hello"):
    r = api.post(url(thread, "messages"), {"role": "user", "content": [{"type": "text", "text": text}]}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


# --- messages -------------------------------------------------------------------------


def test_messages_get_seq_1_2_3_and_page_by_seq(api, thread):
    for i in range(5):
        assert post_user_message(api, thread, f"m{i}")["seq"] == i + 1
    r = api.get(url(thread, "messages"), {"limit": 2})
    body = r.json()
    assert [m["seq"] for m in body["results"]] == [1, 2] and body["has_more"] and body["next_after_seq"] == 2
    body = api.get(url(thread, "messages"), {"after_seq": 4, "limit": 2}).json()
    assert [m["seq"] for m in body["results"]] == [5] and not body["has_more"] and body["next_after_seq"] is None


@pytest.mark.parametrize("payload", [
    {"role": "robot", "content": [{"type": "text", "text": "x"}]},
    {"role": "user", "content": []},
    {"role": "user", "content": "text"},
    {"role": "user", "content": [{"type": "text"}]},
    {"role": "user"},
])
def test_bad_messages_are_422(api, thread, payload):
    r = api.post(url(thread, "messages"), payload, format="json")
    assert r.status_code == 422 and r.json()["detail"]


def test_bad_message_query_is_422(api, thread):
    assert api.get(url(thread, "messages"), {"limit": 0}).status_code == 422
    assert api.get(url(thread, "messages"), {"after_seq": "x"}).status_code == 422


@pytest.mark.parametrize("size", [1, 40])
def test_listing_costs_constant_queries(api, thread, django_assert_max_num_queries, size):
    Message.objects.bulk_create(Message(thread=thread, seq=i + 1, role="user", content=[]) for i in range(size))
    Run.objects.bulk_create(Run(thread=thread, seq=i + 1, status="success") for i in range(size))
    with django_assert_max_num_queries(4):
        assert len(api.get(url(thread, "messages"), {"limit": 500}).json()["results"]) == size
    with django_assert_max_num_queries(5):
        assert len(api.get(url(thread, "runs"), {"limit": 500}).json()["results"]) == size


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_message_posts_get_seqs_without_gaps(project, owner):
    thread = services.create_thread(project=project, created_by=owner)
    errors, barrier = [], threading.Barrier(20)

    def post(i):
        try:
            barrier.wait()
            services.post_message(thread=thread, role="user", content=[{"type": "text", "text": str(i)}])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert sorted(Message.objects.filter(thread=thread).values_list("seq", flat=True)) == list(range(1, 21))
    assert Thread.objects.get(pk=thread.pk).last_message_seq == 20


# --- checkpoints ----------------------------------------------------------------------


def test_checkpoints_parent_must_exist_and_state_is_latest_per_ns(api, thread):
    def put(cid, parent=None, ns="", writes=()):
        return api.post(url(thread, "checkpoints"), {
            "checkpoint_id": cid, "parent_checkpoint_id": parent, "checkpoint_ns": ns,
            "checkpoint": {"step": cid}, "metadata": {"m": 1}, "writes": list(writes),
        }, format="json")

    assert put("a").status_code == 201
    r = put("b", "a", writes=[{"task_id": "t", "idx": 0, "channel": "c", "value": 1}])
    assert r.status_code == 201 and r.json()["writes"][0]["channel"] == "c"
    assert put("x", "missing").status_code == 422
    assert put("y", "a", ns="inner").status_code == 422  # the parent is in another namespace
    assert put("a").status_code == 409
    assert put("i1", ns="inner").status_code == 201
    state = api.get(url(thread, "state")).json()["values"]
    assert {(c["checkpoint_ns"], c["checkpoint_id"]) for c in state} == {("", "b"), ("inner", "i1")}
    listed = api.get(url(thread, "checkpoints"), {"checkpoint_ns": ""}).json()["results"]
    assert [c["checkpoint_id"] for c in listed] == ["b", "a"]


# --- runs -----------------------------------------------------------------------------


def test_run_completes_through_echo_runtime_in_process(api, thread, django_capture_on_commit_callbacks):
    post_user_message(api, thread, "ping")
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(url(thread, "runs"), {"metadata": {"k": "v"}}, format="json")
    assert r.status_code == 201, r.content
    run = Run.objects.get(pk=r.json()["run_id"])
    assert run.status == "success" and run.result == "Echo: ping"
    assert run.start_message_seq == 2 and run.end_message_seq == 2
    assert run.output_tokens > 0
    answer = Message.objects.get(thread=thread, seq=2)
    assert answer.role == "assistant" and answer.run_id == run.pk and answer.text == "Echo: ping"
    assert Checkpoint.objects.filter(run=run).count() == 1
    thread.refresh_from_db()
    assert thread.status == "idle"
    body = api.get(url(thread, "runs", run.pk)).json()
    assert body["status"] == "success" and body["token_usage"]["output_tokens"] == run.output_tokens


def test_failing_runtime_records_error(api, thread, django_capture_on_commit_callbacks):
    post_user_message(api, thread, "fail: boom")
    with django_capture_on_commit_callbacks(execute=True):
        run_id = api.post(url(thread, "runs"), {}, format="json").json()["run_id"]
    run = Run.objects.get(pk=run_id)
    assert run.status == "error" and run.error == "boom"
    thread.refresh_from_db()
    assert thread.status == "idle"


def test_one_active_run_per_thread_and_thread_status_follows(api, thread):
    r = api.post(url(thread, "runs"), {}, format="json")  # not executed: no commit in this test
    assert r.status_code == 201 and r.json()["status"] == "pending"
    thread.refresh_from_db()
    assert thread.status == "running"
    r2 = api.post(url(thread, "runs"), {}, format="json")
    assert r2.status_code == 409 and r2.json()["detail"]
    assert api.get(url(thread, "runs"), {"status": "pending"}).json()["count"] == 1
    assert api.get(url(thread, "runs"), {"status": "nope"}).status_code == 422


def test_interrupt_keeps_checkpoints_and_rollback_deletes_them(api, thread):
    run = services.create_run(thread=thread)
    Checkpoint.objects.create(thread=thread, checkpoint_id="c1", run=run)
    r = api.post(url(thread, "runs", run.pk, "cancel") + "?action=interrupt")
    assert r.status_code == 200 and r.json()["status"] == "interrupted"
    assert Checkpoint.objects.filter(run=run).count() == 1
    thread.refresh_from_db()
    assert thread.status == "idle"
    assert api.post(url(thread, "runs", run.pk, "cancel")).status_code == 409  # no longer active

    run2 = services.create_run(thread=thread)
    cp = Checkpoint.objects.create(thread=thread, checkpoint_id="c2", run=run2)
    CheckpointWrite.objects.create(checkpoint=cp, task_id="t", idx=0, channel="c")
    r = api.post(url(thread, "runs", run2.pk, "cancel") + "?action=rollback")
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert not Run.objects.filter(pk=run2.pk).exists()
    assert not Checkpoint.objects.filter(checkpoint_id="c2").exists() and not CheckpointWrite.objects.exists()
    assert Checkpoint.objects.filter(checkpoint_id="c1").exists()
    assert api.post(url(thread, "runs", run.pk, "cancel") + "?action=explode").status_code == 422


def test_bulk_cancel(api, thread):
    services.create_run(thread=thread)
    r = api.post(url(thread, "runs", "cancel"), {"status": "pending"}, format="json")
    assert r.status_code == 200 and r.json()["cancelled_count"] == 1
    assert api.post(url(thread, "runs", "cancel"), {"status": "bogus"}, format="json").status_code == 422


def test_awaiting_runtime_pauses_the_thread_on_an_approval(api, thread, django_capture_on_commit_callbacks):
    post_user_message(api, thread, "approve: sandbox.exec")
    with django_capture_on_commit_callbacks(execute=True):
        run_id = api.post(url(thread, "runs"), {}, format="json").json()["run_id"]
    thread.refresh_from_db()
    assert thread.status == "awaiting"
    assert Run.objects.get(pk=run_id).status == "running"
    assert Approval.objects.get(run_id=run_id).tool_name == "sandbox.exec"


# --- deleting a run -------------------------------------------------------------------


def test_delete_success_run_removes_its_checkpoints_and_keeps_messages(api, thread, django_capture_on_commit_callbacks):
    runs = []
    for text in ("one", "two"):
        post_user_message(api, thread, text)
        with django_capture_on_commit_callbacks(execute=True):
            runs.append(api.post(url(thread, "runs"), {}, format="json").json()["run_id"])
    assert Checkpoint.objects.filter(thread=thread).count() == 2
    r = api.delete(url(thread, "runs", runs[0]))
    assert r.status_code == 200
    assert r.json() == {"thread_id": str(thread.pk), "run_id": runs[0], "deleted": True}
    assert not Run.objects.filter(pk=runs[0]).exists()
    assert not Checkpoint.objects.filter(run_id=runs[0]).exists()
    assert Checkpoint.objects.filter(run_id=runs[1]).count() == 1
    assert Message.objects.filter(thread=thread).count() == 4  # every message stays
    assert Message.objects.get(thread=thread, seq=2).run_id is None
    assert api.delete(url(thread, "runs", runs[0])).status_code == 404


def test_delete_active_run_is_409_unless_forced(api, thread):
    run = services.create_run(thread=thread)
    r = api.delete(url(thread, "runs", run.pk))
    assert r.status_code == 409 and "force" in r.json()["detail"]
    assert api.delete(url(thread, "runs", run.pk) + "?force=true").status_code == 200
    assert not Run.objects.filter(pk=run.pk).exists()
    thread.refresh_from_db()
    assert thread.status == "idle"
    assert api.delete(url(thread, "runs", run.pk) + "?force=maybe").status_code in (404, 422)


def test_delete_run_of_another_thread_is_404(api, thread, project, owner):
    other = services.create_thread(project=project, created_by=owner)
    run = Run.objects.create(thread=other, seq=1, status="success")
    r = api.delete(url(thread, "runs", run.pk))
    assert r.status_code == 404 and r.json()["detail"]
    assert Run.objects.filter(pk=run.pk).exists()


def test_delete_run_malformed_ids_are_422(api, thread):
    r = api.delete(url(thread, "runs", "not-a-uuid"))
    assert r.status_code == 422 and r.json()["detail"]
    assert api.delete("/api/threads/nope/runs/also-nope").status_code == 422


def test_delete_run_auth(anon, thread, account, member_of, other_account):
    run = Run.objects.create(thread=thread, seq=1, status="success")
    assert anon.delete(url(thread, "runs", run.pk)).status_code == 401
    viewer = client_for(member_of(account, Role.VIEWER))
    r = viewer.delete(url(thread, "runs", run.pk))
    assert r.status_code == 403 and r.json()["detail"]
    stranger = client_for(other_account.memberships.get().user)
    assert stranger.delete(url(thread, "runs", run.pk)).status_code == 404
    member = client_for(member_of(account, Role.MEMBER))
    assert member.delete(url(thread, "runs", run.pk)).status_code == 200


# --- a real Celery worker ---------------------------------------------------------------


@pytest.mark.worker
def test_run_completes_in_a_real_worker(celery_worker_process, project, owner):
    thread = services.create_thread(project=project, created_by=owner)
    services.post_message(thread=thread, role="user", content=[{"type": "text", "text": "from the worker"}])
    run = services.create_run(thread=thread)
    done = wait_for(lambda: Run.objects.get(pk=run.pk).status == "success", timeout=30)
    assert done, Run.objects.get(pk=run.pk).status
    assert Message.objects.get(thread=thread, seq=2).text == "Echo: from the worker"
    assert Thread.objects.get(pk=thread.pk).status == "idle"


def test_a_run_left_pending_is_sent_again(thread):
    """The broker was down when the run was created: the periodic requeue executes it."""
    services.post_message(thread=thread, role="user", content=[{"type": "text", "text": "late"}])
    run = services.create_run(thread=thread)  # no commit in this test: never sent
    assert services.requeue_pending_runs(older_than_seconds=3600) == 0
    assert services.requeue_pending_runs(older_than_seconds=0) == 1
    run.refresh_from_db()
    assert run.status == "success" and run.result == "Echo: late"
    assert services.requeue_pending_runs(older_than_seconds=0) == 0
