"""Deleting a thread removes everything under it in the database, at a query cost
that does not depend on its size, and takes the project (and its sandbox) with the
last thread."""

from pathlib import Path

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from projects import caches
from projects import services as project_services
from projects.models import Project
from receipts.models import DeletionReceipt
from sandboxes.models import Sandbox, SandboxState
from sandboxes.services import provision_sandbox
from threads.models import Approval, Checkpoint, CheckpointWrite, Embedding, Message, Run, Thread
from threads.services import create_thread, delete_thread, delete_threads
from threads.vectorstore import schedule_message_indexing

pytestmark = pytest.mark.django_db


def fill(thread, *, messages=1, runs=0, checkpoints=0, writes_per_checkpoint=0, approvals=0):
    """Bulk rows under a thread, as a long conversation would leave them (its message
    numbers go on from its last, which moves with them, as `append_messages` does)."""
    run_rows = Run.objects.bulk_create(
        [Run(thread=thread, seq=i + 1, status="success") for i in range(runs)], batch_size=500
    )
    first = Thread.objects.get(pk=thread.pk).last_message_seq + 1
    Thread.objects.filter(pk=thread.pk).update(last_message_seq=F("last_message_seq") + messages)
    Message.objects.bulk_create(
        [
            Message(
                thread=thread, seq=first + i, role="user" if i % 2 == 0 else "assistant",
                content=[{"type": "text", "text": f"message {i} about apples"}],
                run=run_rows[i % runs] if runs else None,
            )
            for i in range(messages)
        ],
        batch_size=1000,
    )
    cps = Checkpoint.objects.bulk_create(
        [
            Checkpoint(thread=thread, checkpoint_id=f"cp-{i}", run=run_rows[i % runs] if runs else None)
            for i in range(checkpoints)
        ],
        batch_size=500,
    )
    CheckpointWrite.objects.bulk_create(
        [
            CheckpointWrite.for_checkpoint(cp, task_id="t", idx=k, channel="messages", value={"k": k})
            for cp in cps
            for k in range(writes_per_checkpoint)
        ],
        batch_size=1000,
    )
    Approval.objects.bulk_create([Approval(thread=thread, run=run_rows[0] if runs else None) for _ in range(approvals)])


def index_all(django_capture_on_commit_callbacks, threads):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        schedule_message_indexing(message_ids=list(Message.objects.filter(thread__in=threads).values_list("id", flat=True)))


def rows_under(thread_ids) -> dict:
    return {
        "threads": Thread.objects.filter(id__in=thread_ids).count(),
        "messages": Message.objects.filter(thread_id__in=thread_ids).count(),
        "runs": Run.objects.filter(thread_id__in=thread_ids).count(),
        "checkpoints": Checkpoint.objects.filter(thread_id__in=thread_ids).count(),
        "writes": CheckpointWrite.objects.filter(checkpoint__thread_id__in=thread_ids).count(),
        "approvals": Approval.objects.filter(thread_id__in=thread_ids).count(),
    }


@pytest.fixture
def big_thread(project):
    """5,000 messages, 200 runs, 1,000 checkpoints (2 writes each), 2 levels of sub-threads."""
    root = create_thread(project=project, title="big")
    fill(root, messages=5000, runs=200, checkpoints=1000, writes_per_checkpoint=2, approvals=3)
    child = create_thread(project=project, parent_thread=root)
    fill(child, messages=50, runs=5, checkpoints=20, writes_per_checkpoint=1, approvals=1)
    grandchild = create_thread(project=project, parent_thread=child)
    fill(grandchild, messages=20, runs=2, checkpoints=10)
    return root, [root.pk, child.pk, grandchild.pk]


@pytest.mark.parametrize("last_in_project", [False, True])
def test_a_huge_thread_costs_the_queries_of_a_one_message_thread(
    account, project, big_thread, django_assert_num_queries, last_in_project
):
    root, ids = big_thread
    assert rows_under(ids)["messages"] == 5070 and rows_under(ids)["checkpoints"] == 1030
    small_project = project_services.create_project(account=account, name="small")
    small = create_thread(project=small_project)
    fill(small, messages=1)
    if not last_in_project:
        create_thread(project=project)
        create_thread(project=small_project)

    with CaptureQueriesContext(connection) as small_queries:
        delete_thread(thread=small)
    with django_assert_num_queries(len(small_queries)):
        delete_thread(thread=root)

    assert rows_under(ids) == dict.fromkeys(rows_under(ids), 0)
    assert Project.objects.filter(pk=project.pk).exists() is not last_in_project


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one round trip on PostgreSQL")
def test_a_thread_and_its_receipt_go_in_one_round_trip(project, big_thread, django_assert_num_queries):
    root, ids = big_thread
    create_thread(project=project)
    # BEGIN (here a savepoint); the locks, the count, the delete and the receipt's
    # INSERT; COMMIT (here its release)
    with django_assert_num_queries(3):
        delete_thread(thread=root)
    receipt = DeletionReceipt.objects.get()
    assert (receipt.threads, receipt.messages, receipt.checkpoints) == (3, 5070, 1030)
    assert sorted(receipt.embedding_thread_ids) == sorted(str(i) for i in ids)


@pytest.mark.parametrize("how", ["service", "model_delete"])
def test_the_active_runs_of_a_deleted_thread_and_its_sub_threads_are_stopped(
        project, how, django_capture_on_commit_callbacks, django_assert_max_num_queries):
    """Every pending or running run under the deleted thread (a sub-thread's too) is
    told to stop and its stream ends `deleted` after commit — through the service (the
    same queries as ever) and through `thread.delete()` (the signal); a finished run
    and another thread's active run are left alone."""
    from threads.streams.bus import get_bus, run_log

    root = create_thread(project=project)
    child = create_thread(project=project, parent_thread=root)
    other = create_thread(project=project)
    going = [Run.objects.create(thread=root, seq=1, status="running"),
             Run.objects.create(thread=root, seq=2, status="pending"),
             Run.objects.create(thread=child, seq=1, status="running")]
    done = Run.objects.create(thread=root, seq=3, status="success")
    staying = Run.objects.create(thread=other, seq=1, status="running")
    with django_capture_on_commit_callbacks(execute=True):
        if how == "service":
            with django_assert_max_num_queries(3 if connection.vendor == "postgresql" else 8):
                delete_thread(thread=root)
        else:
            Thread.objects.get(pk=root.pk).delete()
    bus = get_bus()
    for run in going:
        (end,) = [e for e in bus.read(run_log(run.pk), None, 0.1) if e.event == "end"]
        assert end.data == {"run_id": str(run.pk), "status": "deleted"} and bus.is_cancelled(run.pk)
    for run in (done, staying):
        assert bus.read(run_log(run.pk), None, 0.01) == [] and not bus.is_cancelled(run.pk)
    assert Run.objects.filter(pk=staying.pk, status="running").exists()


@pytest.mark.parametrize("deleted", ["project", "account"])
def test_deleting_a_project_or_an_account_stops_their_threads_active_runs(
        account, project, deleted, django_capture_on_commit_callbacks):
    """The database cascade takes their threads: their active runs are stopped, and
    their streams end `deleted`, as for a thread deleted on its own."""
    from threads.streams.bus import get_bus, run_log

    run = Run.objects.create(thread=create_thread(project=project), seq=1, status="running")
    with django_capture_on_commit_callbacks(execute=True):
        if deleted == "project":
            project_services.delete_project(project=project)
        else:
            project_services.delete_account(account=account)
    (end,) = [e for e in get_bus().read(run_log(run.pk), None, 0.1) if e.event == "end"]
    assert end.data == {"run_id": str(run.pk), "status": "deleted"} and get_bus().is_cancelled(run.pk)


def test_deleting_leaves_other_threads_untouched(project, big_thread):
    root, ids = big_thread
    other = create_thread(project=project)
    fill(other, messages=3, runs=1, checkpoints=2, writes_per_checkpoint=1, approvals=1)
    before = rows_under([other.pk])

    delete_thread(thread=root)

    assert rows_under([other.pk]) == before


def test_a_batch_of_many_threads_costs_the_queries_of_a_batch_of_few(account, django_assert_num_queries):
    def batch(n_projects, threads_per_project):
        ids = []
        for p in range(n_projects):
            project = project_services.create_project(account=account, name=f"p{p}")
            provision_sandbox(project=project)
            for _ in range(threads_per_project):
                thread = create_thread(project=project)
                create_thread(project=project, parent_thread=thread)
                ids.append(thread.pk)
        create_thread(project=project)  # one project keeps a thread
        return ids

    few, many = batch(2, 2), batch(25, 4)
    with CaptureQueriesContext(connection) as few_queries:
        assert delete_threads(thread_ids=few) == 4
    with django_assert_num_queries(len(few_queries)):
        assert delete_threads(thread_ids=many) == 100
    assert len([q for q in few_queries if "SAVEPOINT" not in q["sql"]]) <= 11  # 8, and the receipt: a count, its INSERT and its sandbox links
    assert Thread.objects.filter(id__in=few + many).count() == 0
    assert Project.objects.filter(account=account).count() == 2  # the two that kept a thread


def test_the_count_is_of_given_threads_actually_deleted(project):
    a, b = create_thread(project=project), create_thread(project=project)
    sub = create_thread(project=project, parent_thread=a)
    unknown = "8b0a4a2c-4b8e-4a57-9d0e-1f0e6c1d2a3b"

    assert delete_threads(thread_ids=[a.pk, str(a.pk), sub.pk, unknown]) == 2
    assert delete_threads(thread_ids=[a.pk]) == 0
    assert delete_threads(thread_ids=[]) == 0
    assert list(Thread.objects.values_list("id", flat=True)) == [b.pk]


def test_last_thread_takes_project_sandbox_and_embeddings(
    api, project, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sandbox, _ = provision_sandbox(project=project)  # the creation task runs on commit
    directory = Path(settings.SANDBOX_ROOT) / str(sandbox.pk)
    assert directory.is_dir()
    thread = create_thread(project=project)
    sub = create_thread(project=project, parent_thread=thread)
    fill(thread, messages=3)
    fill(sub, messages=2)
    index_all(django_capture_on_commit_callbacks, [thread, sub])
    assert Embedding.objects.filter(thread_id__in=[thread.pk, sub.pk]).count() == 5

    with django_capture_on_commit_callbacks() as callbacks:
        response = api.delete(f"/api/threads/{thread.pk}")
    assert response.status_code == 200
    assert response.json() == {"message": "Thread deleted successfully", "thread_id": str(thread.pk)}
    assert not Project.objects.filter(pk=project.pk).exists()
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.PENDING_DELETION and sandbox.project_id is None
    assert directory.is_dir()  # nothing outside the database before commit

    for callback in callbacks:
        callback()
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.DELETED and sandbox.deleted_at is not None
    assert not directory.exists()
    assert not Embedding.objects.filter(thread_id__in=[thread.pk, sub.pk]).exists()


def test_not_the_last_thread_keeps_project_and_sandbox(api, project, settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        sandbox, _ = provision_sandbox(project=project)
    thread, other = create_thread(project=project), create_thread(project=project)
    fill(thread, messages=2)
    fill(other, messages=2)
    index_all(django_capture_on_commit_callbacks, [thread, other])

    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/threads/{thread.pk}").status_code == 200

    assert Project.objects.filter(pk=project.pk).exists()
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.READY
    assert (Path(settings.SANDBOX_ROOT) / str(sandbox.pk)).is_dir()
    assert not Embedding.objects.filter(thread_id=thread.pk).exists()
    assert Embedding.objects.filter(thread_id=other.pk).count() == 2


# --- Deleted any other way: the same handlers --------------------------------------


def test_a_queryset_deleted_in_the_shell_gets_the_same_cleanup(
    account, project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sandbox, _ = provision_sandbox(project=project)
        parent = create_thread(project=project)
        child = create_thread(project=project, parent_thread=parent)
        grandchild = create_thread(project=project, parent_thread=child)
        keeper = create_thread(project=project)
    fill(grandchild, messages=2)
    fill(keeper, messages=1)
    index_all(django_capture_on_commit_callbacks, [grandchild, keeper])
    assert caches.thread_slots_used(account.pk) == 4

    # A thread and its own sub-thread in one queryset: each counted once.
    with django_capture_on_commit_callbacks(execute=True):
        Thread.objects.filter(id__in=[parent.pk, child.pk]).delete()

    assert rows_under([parent.pk, child.pk, grandchild.pk]) == dict.fromkeys(rows_under([]), 0)
    assert caches.thread_slots_used(account.pk) == 1
    assert not Embedding.objects.filter(thread_id=grandchild.pk).exists()
    assert Project.objects.filter(pk=project.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        Thread.objects.get(pk=keeper.pk).delete()

    assert not Project.objects.filter(pk=project.pk).exists()
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.DELETED
    assert not Embedding.objects.exists()
    assert caches.thread_slots_used(account.pk) == 0


def test_a_project_deleted_directly_cleans_up_its_sandbox_and_embeddings(
    api, account, project, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sandbox, _ = provision_sandbox(project=project)
        threads = [create_thread(project=project) for _ in range(3)]
    for thread in threads:
        fill(thread, messages=2)
    index_all(django_capture_on_commit_callbacks, threads)
    assert api.get(f"/api/accounts/{account.pk}/usage").json()["thread_count"] == 3

    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/projects/{project.pk}").status_code == 200

    assert not Thread.objects.filter(project_id=project.pk).exists()
    sandbox.refresh_from_db()
    assert sandbox.state == SandboxState.DELETED
    assert not (Path(settings.SANDBOX_ROOT) / str(sandbox.pk)).exists()
    assert not Embedding.objects.exists()
    usage = api.get(f"/api/accounts/{account.pk}/usage").json()
    assert (usage["thread_count"], usage["project_count"]) == (0, 0)
    assert caches.thread_slots_used(account.pk) == 0


def test_deleting_an_account_retires_its_sandboxes_and_embeddings(account, project, owner,
                                                                  django_capture_on_commit_callbacks):
    from threads.services import post_message

    sandbox = Sandbox.objects.create(project=project, account=account, provider="local", state="ready")
    with django_capture_on_commit_callbacks(execute=True):
        thread = create_thread(project=project, created_by=owner)
        post_message(thread=thread, role="user", content=[{"type": "text", "text": "remember this"}])
    assert Embedding.objects.filter(project_id=project.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        account.delete()
    sandbox.refresh_from_db()
    assert sandbox.state == "deleted" and sandbox.project_id is None
    assert not Embedding.objects.filter(project_id=project.pk).exists()
    assert not Thread.objects.filter(pk=thread.pk).exists()
