"""Deleting threads, and what the database cannot do for it.

The database owns the cascade: one `DELETE` of the root threads removes their
sub-threads, messages, runs, checkpoints (and writes) and approvals, so a delete
costs the same number of queries whatever a thread holds. Around that delete, in
the same transaction:

1. the threads' projects are locked (`SELECT ... FOR UPDATE`, in id order, as
   `create_thread` locks its project), so concurrent deletes and creates in a
   project are serialised: the project of a deleted last thread is deleted exactly
   once and never left empty;
2. the ids of everything going (roots and every level of sub-threads) are collected
   with one recursive query, before the cascade removes them;
3. projects left without a thread are deleted, and their sandboxes marked
   `pending_deletion` (the sandbox outbox);
4. after commit: embedding removal, sandbox deletion at the provider (both tasks,
   retried) and the account caches.

The steps are the functions below, used by two paths: `delete_threads` does them
set-based for any number of threads (a batch of 1000 costs the same handful of
queries as a batch of 1); `threads.signals` does them for a thread deleted any other
way (`thread.delete()`, a queryset in the shell, Django's admin), one thread at a time.
"""

from collections import Counter
from collections.abc import Iterable

from django.db import connection, router, transaction
from django.db.models import Exists, OuterRef

from config.errors import NotFound
from config.observability import record_destructive
from projects import caches
from projects.models import Project
from projects.selectors import parse_uuid
from sandboxes.services import request_sandbox_deletion

from ..models import Thread
from ..vectorstore import schedule_embedding_removal


def delete_thread(*, thread: Thread) -> None:
    """Delete one thread and everything under it; 404 if it is already gone."""
    if not delete_threads(thread_ids=[thread.pk]):
        raise NotFound("Thread not found.")


@transaction.atomic
def delete_threads(*, thread_ids: Iterable) -> int:
    """Delete these threads with everything under them, set-based.

    Returns how many of the given threads were deleted (unknown ids, ids deleted
    meanwhile and duplicates are not counted; a given sub-thread of a given thread
    counts). At most 8 queries, whatever the number of threads and their contents.
    """
    root_ids = {parse_uuid(t, name="thread_ids") for t in thread_ids}
    if not root_ids:
        return 0
    project_ids = set(
        Thread.objects.filter(id__in=root_ids).order_by().values_list("project_id", flat=True).distinct()
    )
    if not project_ids:
        return 0
    removed = lock_and_collect(root_ids=root_ids, project_ids=project_ids)
    roots = root_ids & {t.id for t in removed}
    if not roots:
        return 0
    Thread.objects.filter(id__in=roots)._raw_delete(router.db_for_write(Thread))
    deleted_projects = delete_empty_projects(project_ids={t.project_id for t in removed})
    schedule_cleanup(removed=removed, deleted_project_ids=deleted_projects)
    record_destructive("delete_threads", {"threads": len(removed), "projects": len(deleted_projects)})
    return len(roots)


# --- The steps, shared with threads.signals ----------------------------------------


def lock_and_collect(*, root_ids: Iterable, project_ids: Iterable) -> list[Thread]:
    """Lock the projects, then return every thread to be removed (the roots in those
    projects and all their sub-threads, any depth) as (id, account_id, project_id).

    Sub-threads share their parent's project, so under these locks the set cannot
    change before the delete.
    """
    locked = list(
        Project.objects.select_for_update().filter(id__in=list(project_ids)).order_by("id").values_list("id", flat=True)
    )
    if not locked:
        return []
    return collect_subtrees(root_ids=root_ids, project_ids=locked)


def collect_subtrees(*, root_ids: Iterable, project_ids: Iterable) -> list[Thread]:
    """One recursive query (SQLite and PostgreSQL) for the roots and all their descendants."""
    anchor, params = (
        Thread.objects.filter(id__in=list(root_ids), project_id__in=list(project_ids))
        .order_by()
        .values("id")
        .query.sql_with_params()
    )
    q = connection.ops.quote_name
    table, parent = q(Thread._meta.db_table), q(Thread._meta.get_field("parent_thread").column)
    sql = (
        f"WITH RECURSIVE subtree(id) AS ({anchor} "
        f"UNION SELECT child.id FROM {table} child JOIN subtree ON child.{parent} = subtree.id) "
        f"SELECT id, account_id, project_id FROM {table} WHERE id IN (SELECT id FROM subtree)"
    )
    return list(Thread.objects.raw(sql, params))


def delete_empty_projects(*, project_ids: Iterable) -> list:
    """Of these locked projects, delete those left without threads (marking their
    sandboxes `pending_deletion`); returns their ids. One query (an EXISTS per
    project, which stops at the first thread), 4 when some are empty."""
    has_threads = Exists(Thread.objects.filter(project_id=OuterRef("pk")))
    empty = list(
        Project.objects.filter(~has_threads, id__in=list(project_ids)).order_by("id").values_list("id", flat=True)
    )
    if empty:
        request_sandbox_deletion(project_ids=empty)
        Project.objects.filter(id__in=empty)._raw_delete(router.db_for_write(Project))
    return empty


def schedule_cleanup(*, removed: list[Thread], deleted_project_ids: Iterable = ()) -> None:
    """After commit: remove the embeddings of the removed threads (and of deleted
    projects), and update the owning accounts' caches. No query."""
    deleted_project_ids = list(deleted_project_ids)
    schedule_embedding_removal(thread_ids=[t.id for t in removed], project_ids=deleted_project_ids)
    caches.on_commit_threads_removed(Counter(t.account_id for t in removed))
