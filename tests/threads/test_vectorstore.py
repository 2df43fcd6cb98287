"""The vector store: the embedder, indexing after commit, search within what the
caller may read, and removal on deletion that survives a failing store."""

import logging

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from projects import services as project_services
from projects.models import Role
from receipts.models import DeletionReceipt
from receipts.services import reconcile_deletions
from tests.conftest import client_for
from threads.models import Embedding, Message, PendingIndex, Thread
from threads.services import create_thread
from threads.vectorstore import (DatabaseVectorStore, cosine, embed, reindex_pending_messages,
                                 schedule_message_indexing)

pytestmark = pytest.mark.django_db


class FailingOnceStore(DatabaseVectorStore):
    """The external vector store having an outage: the first removal fails."""

    failures = 0

    def remove(self, **kwargs):
        if FailingOnceStore.failures == 0:
            FailingOnceStore.failures += 1
            raise ConnectionError("vector store unavailable")
        return super().remove(**kwargs)


def say(thread, *texts):
    start = Message.objects.filter(thread=thread).count()
    return Message.objects.bulk_create(
        [Message(thread=thread, seq=start + i + 1, role="user", content=[{"type": "text", "text": t}]) for i, t in enumerate(texts)]
    )


def indexed(django_capture_on_commit_callbacks, messages):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        schedule_message_indexing(message_ids=[m.id for m in messages])


def test_the_embedder_is_deterministic_and_ranks_shared_words_higher():
    assert embed("Apples and pears") == embed("apples AND pears")
    assert abs(cosine(embed("red apples"), embed("red apples")) - 1) < 1e-5
    assert cosine(embed("apple pie recipe"), embed("a recipe for apple pie")) > cosine(
        embed("apple pie recipe"), embed("kubernetes cluster upgrade")
    )
    assert not any(embed("  ...  "))


def test_messages_are_indexed_only_after_commit(project, django_capture_on_commit_callbacks):
    thread = create_thread(project=project)
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        messages = say(thread, "hello world", "x" * 2500)
        schedule_message_indexing(message_ids=[m.id for m in messages])
        assert not Embedding.objects.exists()
    for callback in callbacks:
        callback()
    rows = Embedding.objects.filter(thread_id=thread.pk)
    assert rows.count() == 1 + 3  # the long message in 1,000-character chunks
    assert set(rows.values_list("account_id", "project_id").distinct()) == {(project.account_id, project.pk)}


def test_search_finds_the_best_threads_the_caller_may_read(
    api, account, project, other_account, django_capture_on_commit_callbacks
):
    second = project_services.create_project(account=account, name="second")
    cooking, servers, elsewhere = create_thread(project=project), create_thread(project=project), create_thread(project=second)
    hidden = create_thread(project=project_services.create_project(account=other_account, name="theirs"))
    indexed(django_capture_on_commit_callbacks, [
        *say(cooking, "my grandmother's apple pie recipe", "bake the pie for forty minutes"),
        *say(servers, "upgrade the kubernetes cluster tonight"),
        *say(elsewhere, "an apple a day"),
        *say(hidden, "secret apple pie recipe"),
    ])

    response = api.get("/api/threads/search", {"q": "apple pie recipe"})
    assert response.status_code == 200
    found = [r["thread"]["thread_id"] for r in response.json()["results"]]
    assert found[0] == str(cooking.pk)
    assert str(elsewhere.pk) in found and str(hidden.pk) not in found and str(servers.pk) not in found

    in_second = api.get("/api/threads/search/", {"q": "apple", "project_id": str(second.pk)}).json()["results"]
    assert [r["thread"]["thread_id"] for r in in_second] == [str(elsewhere.pk)]


def test_search_errors(api, anon, other_account):
    theirs = project_services.create_project(account=other_account, name="theirs")
    assert api.get("/api/threads/search").status_code == 422
    assert api.get("/api/threads/search", {"q": "x", "project_id": "nope"}).status_code == 422
    assert api.get("/api/threads/search", {"q": "x", "project_id": str(theirs.pk)}).status_code == 404
    assert anon.get("/api/threads/search", {"q": "x"}).status_code == 401
    assert api.get("/api/threads/search", {"q": "..."}).json() == {"results": []}


def test_a_deleted_threads_embeddings_are_gone_from_search(api, project, django_capture_on_commit_callbacks):
    keep, drop = create_thread(project=project), create_thread(project=project)
    indexed(django_capture_on_commit_callbacks, [*say(keep, "apples"), *say(drop, "apples and more apples")])
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/threads/{drop.pk}").status_code == 200
    results = api.get("/api/threads/search", {"q": "apples"}).json()["results"]
    assert [r["thread"]["thread_id"] for r in results] == [str(keep.pk)]
    assert not Embedding.objects.filter(thread_id=drop.pk).exists()


def test_a_failing_vector_store_never_blocks_the_delete(
    api, project, settings, caplog, django_capture_on_commit_callbacks
):
    keep, drop = create_thread(project=project), create_thread(project=project)
    sub = create_thread(project=project, parent_thread=drop)
    indexed(django_capture_on_commit_callbacks, [*say(keep, "kept"), *say(drop, "dropped"), *say(sub, "sub")])
    settings.VECTOR_STORE_BACKEND = f"{__name__}.FailingOnceStore"
    FailingOnceStore.failures = 0

    with caplog.at_level(logging.WARNING, logger="receipts.services"), django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/api/threads/{drop.pk}")

    assert response.status_code == 200
    assert FailingOnceStore.failures == 1
    assert "Deletion cleanup incomplete" in caplog.text and "vector store unavailable" in caplog.text
    receipt = DeletionReceipt.objects.get()
    assert receipt.root_ids == [str(drop.pk)]
    assert (receipt.cleanup_state, receipt.cleanup_attempts) == ("pending", 1)
    assert "vector store unavailable" in receipt.cleanup_error
    assert reconcile_deletions(min_age_seconds=0) == {"complete": 1, "pending": 0}  # the retry
    receipt.refresh_from_db()
    assert (receipt.cleanup_state, receipt.cleanup_attempts, receipt.embeddings) == ("complete", 2, 2)
    assert not Embedding.objects.filter(thread_id__in=[drop.pk, sub.pk]).exists()  # removed by the reconciler
    assert Embedding.objects.filter(thread_id=keep.pk).count() == 1


def test_indexing_a_message_of_a_deleted_thread_stores_nothing(project, django_capture_on_commit_callbacks):
    thread = create_thread(project=project)
    create_thread(project=project)
    messages = say(thread, "late message")
    thread.delete()
    indexed(django_capture_on_commit_callbacks, messages)
    assert not Embedding.objects.exists()


def test_search_as_a_member_of_several_accounts(make_user, account, project, other_account, django_capture_on_commit_callbacks):
    user = make_user("both")
    project_services.add_member(account=account, user=user, role=Role.VIEWER)
    project_services.add_member(account=other_account, user=user, role=Role.MEMBER)
    mine = create_thread(project=project)
    theirs = create_thread(project=project_services.create_project(account=other_account, name="o"))
    indexed(django_capture_on_commit_callbacks, [*say(mine, "shared topic"), *say(theirs, "shared topic")])
    results = client_for(user).get("/api/threads/search", {"q": "shared topic"}).json()["results"]
    assert {r["thread"]["thread_id"] for r in results} == {str(mine.pk), str(theirs.pk)}


# --- The indexing outbox is keyed by thread -------------------------------------


def raw(sql, pk):
    with connection.cursor() as cur:
        cur.execute(sql, [pk.hex if connection.vendor == "sqlite" else pk])


def test_outbox_rows_carry_their_thread_and_a_message_waits_once(project):
    thread, other = create_thread(project=project), create_thread(project=project)
    first, second = say(thread, "one", "two")
    third, = say(other, "three")
    with transaction.atomic():
        schedule_message_indexing(message_ids=[first.id, second.id, third.id])
        schedule_message_indexing(message_ids=[first.id])  # already waiting: one row
    assert sorted(PendingIndex.objects.values_list("message_id", "thread_id")) == sorted(
        [(first.id, thread.id), (second.id, thread.id), (third.id, other.id)])


def test_a_raw_delete_of_a_thread_leaves_no_outbox_row(project):
    thread, other = create_thread(project=project), create_thread(project=project)
    messages = say(thread, "one", "two", "three")
    kept = say(other, "four")
    with transaction.atomic():
        schedule_message_indexing(message_ids=[m.id for m in messages + kept])
    raw(f"DELETE FROM {Thread._meta.db_table} WHERE id = %s", thread.pk)
    assert list(PendingIndex.objects.values_list("message_id", flat=True)) == [kept[0].id]


def test_a_message_deleted_through_the_orm_takes_its_outbox_row(project):
    thread = create_thread(project=project)
    gone, kept = say(thread, "one", "two")
    with transaction.atomic():
        schedule_message_indexing(message_ids=[gone.id, kept.id])
    Message.objects.get(pk=gone.pk).delete()  # as Django's admin does
    assert list(PendingIndex.objects.values_list("message_id", flat=True)) == [kept.id]


def test_the_reconciler_drains_rows_of_messages_gone_meanwhile(project):
    """A row whose message went by a path that skips signals does no harm: indexing
    finds nothing to embed and removes it."""
    thread = create_thread(project=project)
    gone, kept = say(thread, "vanished words", "kept words")
    with transaction.atomic():
        schedule_message_indexing(message_ids=[gone.id, kept.id])
    Message.objects.filter(pk=gone.pk)._raw_delete(Message.objects.db)
    assert reindex_pending_messages(min_age_seconds=0) == 2
    assert not PendingIndex.objects.exists()
    assert set(Embedding.objects.values_list("message_id", flat=True)) == {kept.id}


@pytest.mark.django_db(transaction=True)
def test_the_migration_keys_existing_outbox_rows_by_thread(project):
    """Rows written under the old schema (a cascade from each message) come out with
    their message's thread, and a raw delete of the thread then takes them."""
    old, new = [("threads", "0007_index_outbox")], [("threads", "0009_pending_index_thread_required")]
    executor = MigrationExecutor(connection)
    executor.migrate(old)
    apps = executor.loader.project_state(old).apps
    OldThread, OldMessage = apps.get_model("threads", "Thread"), apps.get_model("threads", "Message")
    OldPending = apps.get_model("threads", "PendingIndex")
    try:
        threads = [OldThread.objects.create(account_id=project.account_id, project_id=project.pk) for _ in range(2)]
        messages = [OldMessage.objects.create(thread=t, seq=seq, role="user") for t in threads for seq in (1, 2)]
        for m in messages:
            OldPending.objects.create(message=m)
        executor = MigrationExecutor(connection)
        executor.migrate(new)
        assert sorted(PendingIndex.objects.values_list("message_id", "thread_id")) == sorted(
            (m.pk, m.thread_id) for m in messages)
        raw(f"DELETE FROM {Thread._meta.db_table} WHERE id = %s", threads[0].pk)
        assert sorted(PendingIndex.objects.values_list("message_id", flat=True)) == sorted(
            m.pk for m in messages if m.thread_id == threads[1].pk)
    finally:
        call_command("migrate", verbosity=0)
