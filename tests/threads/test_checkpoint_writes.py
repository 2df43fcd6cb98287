"""Pending writes are keyed by thread (and run), with no per-row cascade from their
checkpoint: whatever removes checkpoints removes their writes, nothing is orphaned."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from threads import services
from threads.models import Checkpoint, CheckpointWrite, Message, Run, Thread
from threads.services.checkpoints import delete_checkpoints
from threads.services.messages import compact_thread

pytestmark = pytest.mark.django_db


def make_thread(project):
    return Thread.objects.create(account=project.account, project=project)


def chain(thread, n, *, run=None, prefix="c", parent=None):
    """n checkpoints, each the parent of the next, with two writes each."""
    made = []
    for i in range(n):
        cp = Checkpoint.objects.create(thread=thread, checkpoint_id=f"{prefix}{i}", parent_checkpoint_id=parent, run=run)
        CheckpointWrite.objects.bulk_create(CheckpointWrite.for_checkpoint(cp, task_id="t", idx=k, channel="c")
                                            for k in range(2))
        parent = cp.checkpoint_id
        made.append(cp)
    return made


def orphan_writes():
    """Writes whose checkpoint is gone (there is no constraint to prevent them)."""
    return CheckpointWrite.objects.exclude(checkpoint_id__in=Checkpoint.objects.values("pk"))


def raw(sql, pk):
    with connection.cursor() as cur:
        cur.execute(sql, [pk.hex if connection.vendor == "sqlite" else pk])


def test_a_raw_delete_of_a_thread_leaves_no_write(project):
    thread, other = make_thread(project), make_thread(project)
    run = Run.objects.create(thread=thread, seq=1, status="success")
    chain(thread, 3)
    chain(thread, 2, run=run, prefix="r")
    chain(other, 2)
    raw(f"DELETE FROM {Thread._meta.db_table} WHERE id = %s", thread.pk)
    assert not CheckpointWrite.objects.filter(thread_id=thread.pk).exists()
    assert CheckpointWrite.objects.count() == 4 and not orphan_writes().exists()  # the other thread's stay


def test_a_raw_delete_of_a_run_leaves_no_write(project):
    thread = make_thread(project)
    run = Run.objects.create(thread=thread, seq=1, status="success")
    kept = chain(thread, 2)
    chain(thread, 3, run=run, prefix="r", parent=kept[-1].checkpoint_id)
    raw(f"DELETE FROM {Run._meta.db_table} WHERE id = %s", run.pk)
    assert not orphan_writes().exists()
    assert sorted(CheckpointWrite.objects.values_list("checkpoint_id", flat=True)) == sorted(
        [kept[0].pk] * 2 + [kept[1].pk] * 2)


def test_deleting_checkpoints_through_the_service_takes_their_writes(project):
    thread, other = make_thread(project), make_thread(project)
    cps = chain(thread, 4)
    chain(other, 2)
    delete_checkpoints(Checkpoint.objects.filter(pk__in=[cps[0].pk, cps[1].pk]))
    assert list(Checkpoint.objects.filter(thread=thread).values_list("checkpoint_id", flat=True).order_by("id")) == [
        "c2", "c3"]
    assert not orphan_writes().exists() and CheckpointWrite.objects.count() == 8


def test_deleting_a_checkpoint_through_the_orm_takes_its_writes(project):
    thread = make_thread(project)
    cps = chain(thread, 3)
    cps[1].delete()
    Checkpoint.objects.filter(pk=cps[2].pk).delete()
    assert not orphan_writes().exists() and CheckpointWrite.objects.count() == 2


def test_run_deletion_and_keep_latest_leave_no_write(project):
    thread = make_thread(project)
    first, second = (Run.objects.create(thread=thread, seq=i, status="success") for i in (1, 2))
    a = chain(thread, 3, run=first, prefix="a")
    chain(thread, 3, run=second, prefix="b", parent=a[-1].checkpoint_id)
    services.delete_run(thread=thread, run_id=first.pk)
    assert not orphan_writes().exists() and CheckpointWrite.objects.count() == 6
    assert Checkpoint.objects.get(checkpoint_id="b0").parent_checkpoint_id is None  # re-linked: no ancestor stays
    assert services.keep_latest_checkpoints(thread_ids=[thread.pk]) == 1
    assert list(CheckpointWrite.objects.values_list("checkpoint__checkpoint_id", flat=True)) == ["b2", "b2"]
    assert not orphan_writes().exists()


def test_a_stored_checkpoint_keys_its_writes_by_thread_and_run(project):
    thread = make_thread(project)
    run = Run.objects.create(thread=thread, seq=1, status="success")
    services.put_checkpoint(thread=thread, checkpoint_id="x", checkpoint={}, run=run,
                            writes=[{"task_id": "t", "idx": 0, "channel": "c", "value": 1}])
    write = CheckpointWrite.objects.get()
    assert (write.thread_id, write.run_id) == (thread.pk, run.pk)


def test_token_totals_move_with_messages_and_compaction(project):
    thread = make_thread(project)
    for text in ("one two three", "four five", "six"):
        services.post_message(thread=thread, role="user", content=[{"type": "text", "text": text}])
    thread.refresh_from_db()
    total = sum(Message.objects.filter(thread=thread).values_list("token_count", flat=True))
    assert thread.message_tokens == total > 0 and thread.compacted_tokens == 0
    compact_thread(thread=thread, through_seq=2, summary="s")
    thread.refresh_from_db()
    first_two = sum(Message.objects.filter(thread=thread, seq__lte=2).values_list("token_count", flat=True))
    assert thread.compacted_tokens == first_two and thread.compaction_through_seq == 2


@pytest.mark.django_db(transaction=True)
def test_the_migration_keys_existing_writes_and_fills_token_totals(project):
    """Data written under the old schema (writes cascading from their checkpoint)
    comes out keyed by thread and run, with the thread's token totals summed."""
    old, new = [("threads", "0002_run_multitask_kwargs")], [("threads", "0004_writes_without_checkpoint_cascade_index_cleanup")]
    executor = MigrationExecutor(connection)
    executor.migrate(old)
    apps = executor.loader.project_state(old).apps
    OldThread, OldRun = apps.get_model("threads", "Thread"), apps.get_model("threads", "Run")
    OldMessage, OldCheckpoint = apps.get_model("threads", "Message"), apps.get_model("threads", "Checkpoint")
    OldWrite = apps.get_model("threads", "CheckpointWrite")
    try:
        thread = OldThread.objects.create(account_id=project.account_id, project_id=project.pk,
                                          compaction_through_seq=1)
        run = OldRun.objects.create(thread=thread, seq=1, status="success")
        for seq, tokens in ((1, 5), (2, 7)):
            OldMessage.objects.create(thread=thread, seq=seq, role="user", token_count=tokens)
        with_run = OldCheckpoint.objects.create(thread=thread, checkpoint_id="a", run=run)
        without = OldCheckpoint.objects.create(thread=thread, checkpoint_id="b")
        OldWrite.objects.create(checkpoint=with_run, task_id="t", idx=0, channel="c")
        OldWrite.objects.create(checkpoint=without, task_id="t", idx=0, channel="c")
        executor = MigrationExecutor(connection)
        executor.migrate(new)
        assert sorted((w.checkpoint_id, w.thread_id, w.run_id) for w in CheckpointWrite.objects.all()) == sorted(
            [(with_run.pk, thread.pk, run.pk), (without.pk, thread.pk, None)])
        migrated = Thread.objects.values("message_tokens", "compacted_tokens").get(pk=thread.pk)  # later columns
        assert (migrated["message_tokens"], migrated["compacted_tokens"]) == (12, 5)  # may not exist yet
    finally:
        call_command("migrate", verbosity=0)


def test_run_deletion_relinks_to_the_nearest_ancestor_that_stays(project):
    thread = make_thread(project)
    a, b, c = (Run.objects.create(thread=thread, seq=i, status="success") for i in (1, 2, 3))
    kept = chain(thread, 2, run=a, prefix="a")
    gone = chain(thread, 3, run=b, prefix="b", parent=kept[-1].checkpoint_id)
    chain(thread, 1, run=c, prefix="c", parent=gone[-1].checkpoint_id)
    services.delete_run(thread=thread, run_id=b.pk)
    parents = dict(Checkpoint.objects.filter(thread=thread).values_list("checkpoint_id", "parent_checkpoint_id"))
    assert parents == {"a0": None, "a1": "a0", "c0": "a1"}
    assert not orphan_writes().exists() and CheckpointWrite.objects.count() == 6
