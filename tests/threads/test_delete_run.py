"""DELETE /api/threads/{thread_id}/runs/{run_id} (the LangGraph seed)."""

import pytest
from django.db import connection

from projects.models import Role
from tests.conftest import client_for
from threads import services
from threads.models import Approval, Checkpoint, CheckpointWrite, Message, Run, Thread
from threads.runtime import Runtime, RuntimeResult

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(project, owner):
    return services.create_thread(project=project, created_by=owner)


def run_url(thread, run_id):
    return f"/api/threads/{thread.pk}/runs/{run_id}"


def completed_run(thread, text):
    services.post_message(thread=thread, role="user", content=[{"type": "text", "text": text}])
    run = services.create_run(thread=thread)  # no commit in a `db` test: executed here, as the task would
    return services.execute_run(run_id=run.pk)


def test_deleting_a_finished_run_removes_its_checkpoints_and_keeps_messages(api, thread):
    first, second = completed_run(thread, "one"), completed_run(thread, "two")
    CheckpointWrite.for_checkpoint(Checkpoint.objects.get(run=first), task_id="t", idx=0, channel="c").save()
    assert first.status == second.status == "success"
    r = api.delete(run_url(thread, first.pk))
    assert r.status_code == 200
    assert r.json() == {"thread_id": str(thread.pk), "run_id": str(first.pk), "deleted": True}
    assert not Run.objects.filter(pk=first.pk).exists()
    assert not Checkpoint.objects.filter(run_id=first.pk).exists() and not CheckpointWrite.objects.exists()
    assert Checkpoint.objects.filter(run=second).count() == 1  # other runs' checkpoints stay
    assert list(Message.objects.filter(thread=thread).values_list("seq", "run_id")) == [
        (1, None), (2, None), (3, None), (4, second.pk),  # every message stays; the run's are detached
    ]
    thread.refresh_from_db()
    assert thread.status == "idle" and thread.last_message_seq == 4
    assert api.delete(run_url(thread, first.pk)).status_code == 404  # already gone
    assert api.delete(run_url(thread, second.pk) + "/").status_code == 200  # with a trailing slash too


def test_checkpoints_that_stay_are_relinked_past_the_deleted_ones(api, thread):
    first, second = completed_run(thread, "one"), completed_run(thread, "two")
    root = Checkpoint.objects.get(run=first)
    assert Checkpoint.objects.get(run=second).parent_checkpoint_id == root.checkpoint_id
    services.put_checkpoint(thread=thread, checkpoint_id="mid", parent_checkpoint_id=root.checkpoint_id,
                            checkpoint={}, run=first)
    services.put_checkpoint(thread=thread, checkpoint_id="child", parent_checkpoint_id="mid", checkpoint={})
    services.put_checkpoint(thread=thread, checkpoint_ns="inner", checkpoint_id="mid", checkpoint={})
    services.put_checkpoint(thread=thread, checkpoint_ns="inner", checkpoint_id="inner-child",
                            parent_checkpoint_id="mid", checkpoint={})
    assert api.delete(run_url(thread, first.pk)).status_code == 200
    parents = dict(Checkpoint.objects.filter(thread=thread).values_list("checkpoint_id", "parent_checkpoint_id"))
    assert parents == {
        Checkpoint.objects.get(run=second).checkpoint_id: None,  # its parent went: it is a root now
        "child": None,  # its parent and grandparent went
        "mid": None,  # the namespace "inner": untouched
        "inner-child": "mid",
    }


def test_a_run_entered_from_several_checkpoints_relinks_each_child_to_its_own_ancestor(api, thread):
    """A run whose checkpoints hang under more than one outside checkpoint (a fork it
    continued from two places): each surviving child is walked up to the ancestor on
    its own side, through any depth of the run's checkpoints."""
    run = completed_run(thread, "forked")
    for cid, parent, owner in [("p1", None, None), ("p2", "p1", None), ("a", "p1", run), ("a2", "a", run),
                               ("b", "p2", run), ("c", "a2", None), ("d", "b", None), ("e", "a", None)]:
        services.put_checkpoint(thread=thread, checkpoint_id=cid, parent_checkpoint_id=parent, checkpoint={}, run=owner)
    assert api.delete(run_url(thread, run.pk)).status_code == 200
    parents = dict(Checkpoint.objects.filter(thread=thread).values_list("checkpoint_id", "parent_checkpoint_id"))
    assert parents == {"p1": None, "p2": "p1", "c": "p1", "d": "p2", "e": "p1"}


@pytest.mark.parametrize("status", ["pending", "running"])
def test_an_active_run_is_409_unless_forced(api, thread, status):
    run = services.create_run(thread=thread)
    Run.objects.filter(pk=run.pk).update(status=status)
    Checkpoint.objects.create(thread=thread, checkpoint_id="c", run=run)
    r = api.delete(run_url(thread, run.pk))
    assert r.status_code == 409 and "force" in r.json()["detail"]
    assert Run.objects.get(pk=run.pk).status == status
    assert api.delete(run_url(thread, run.pk) + "?force=maybe").status_code == 422
    assert api.delete(run_url(thread, run.pk) + "?force=false").status_code == 409
    r = api.delete(run_url(thread, run.pk) + "?force=true")
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert not Run.objects.filter(pk=run.pk).exists() and not Checkpoint.objects.exists()
    thread.refresh_from_db()
    assert thread.status == "idle"
    # the thread takes a new run
    assert api.post(f"/api/threads/{thread.pk}/runs", {}, format="json").status_code == 201


def test_forcing_a_run_paused_on_an_approval(api, thread):
    services.post_message(thread=thread, role="user", content=[{"type": "text", "text": "approve: tool.call"}])
    run = services.execute_run(run_id=services.create_run(thread=thread).pk)
    assert run.status == "running" and Approval.objects.filter(run=run).exists()
    assert api.delete(run_url(thread, run.pk)).status_code == 409
    assert api.delete(run_url(thread, run.pk) + "?force=1").status_code == 200
    assert not Approval.objects.exists()
    thread.refresh_from_db()
    assert thread.status == "idle"


class DeletedMidwayRuntime(Runtime):
    """A runtime whose run the user force-deletes while it is working."""

    def execute(self, *, run, history):
        services.delete_run(thread=run.thread, run_id=run.pk, force=True)
        return RuntimeResult(messages=[[{"type": "text", "text": "too late"}]], checkpoint={})


def test_a_run_deleted_while_the_runtime_works_leaves_nothing(thread, settings):
    settings.THREAD_RUNTIMES = {**settings.THREAD_RUNTIMES, "deleted-midway": f"{__name__}.DeletedMidwayRuntime"}
    run = services.create_run(thread=thread, runtime="deleted-midway")
    assert services.execute_run(run_id=run.pk) is None
    assert not Run.objects.exists() and not Message.objects.exists() and not Checkpoint.objects.exists()
    assert Thread.objects.get(pk=thread.pk).status == "idle"


def test_a_run_of_another_thread_is_404(api, thread, project, owner):
    other = services.create_thread(project=project, created_by=owner)
    run = Run.objects.create(thread=other, seq=1, status="success")
    r = api.delete(run_url(thread, run.pk))
    assert r.status_code == 404 and r.json()["detail"]
    assert Run.objects.filter(pk=run.pk).exists()
    r = api.delete(run_url(thread, "00000000-0000-0000-0000-000000000000"))
    assert r.status_code == 404 and r.json()["detail"]


def test_malformed_ids_are_422(api, thread):
    r = api.delete(run_url(thread, "not-a-uuid"))
    assert r.status_code == 422 and isinstance(r.json()["detail"], str)
    r = api.delete("/api/threads/nope/runs/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 422 and r.json()["detail"]


def test_write_access_is_required(anon, thread, account, member_of, other_account):
    run = Run.objects.create(thread=thread, seq=1, status="success")
    r = anon.delete(run_url(thread, run.pk))
    assert r.status_code == 401 and r.json()["detail"]
    viewer = client_for(member_of(account, Role.VIEWER))
    r = viewer.delete(run_url(thread, run.pk))
    assert r.status_code == 403 and r.json()["detail"]
    stranger = client_for(other_account.memberships.get().user)
    assert stranger.delete(run_url(thread, run.pk)).status_code == 404
    assert Run.objects.filter(pk=run.pk).exists()
    member = client_for(member_of(account, Role.MEMBER))
    assert member.delete(run_url(thread, run.pk)).status_code == 200


def test_deleting_a_run_costs_the_same_queries_whatever_its_size(api, thread, django_assert_num_queries):
    small, big = completed_run(thread, "small"), completed_run(thread, "big")
    cps = Checkpoint.objects.bulk_create(Checkpoint(thread=thread, checkpoint_id=f"b{i}", run=big) for i in range(300))
    CheckpointWrite.objects.bulk_create(CheckpointWrite.for_checkpoint(cp, task_id="t", idx=0, channel="c") for cp in cps)
    for run in (big, small):  # each without a checkpoint of another run below its own
        # the user, the thread; in the transaction (savepoint): thread and run locked,
        # the run's messages past the state that stays leave it (the latest checkpoint
        # that stays, their tokens, the UPDATE, the thread's token estimate), the
        # checkpoints to relink (none), one DELETE (the database cascades the rest);
        # on PostgreSQL the two locks, the withdrawal, the re-linking, the count of the
        # run's checkpoints, the DELETE and the receipt's INSERT are one round trip
        with django_assert_num_queries(5 if connection.vendor == "postgresql" else 14):
            assert api.delete(run_url(thread, run.pk)).status_code == 200
    assert not Checkpoint.objects.exists() and not CheckpointWrite.objects.exists()
