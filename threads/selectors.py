"""Reads on threads that return querysets."""

from django.core.exceptions import EmptyResultSet
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet

from projects.selectors import account_ids_for, visible_to, writable_account_ids_for

from .models import ACTIVE_RUN_STATUSES, Checkpoint, Run, Thread


def threads_for(user) -> QuerySet:
    return visible_to(Thread.objects.all(), user)


def writable_threads_for(user) -> QuerySet:
    """The threads the user may write: any in an account where they have a write
    role, and those they created in an account they still belong to."""
    return Thread.objects.filter(
        Q(account_id__in=writable_account_ids_for(user))
        | Q(created_by_id=user.pk, account_id__in=account_ids_for(user))
    )


def id_batches(queryset: QuerySet, size: int):
    """The queryset's ids in batches, by keyset pagination on the primary key: one
    batch in memory at a time, and rows removed meanwhile never shift the pages."""
    last = None
    while True:
        page = queryset.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        ids = list(page.values_list("pk", flat=True)[:size])
        if not ids:
            return
        last = ids[-1]
        yield ids


def with_active_run() -> Exists:
    return Exists(Run.objects.filter(thread_id=OuterRef("pk"), status__in=ACTIVE_RUN_STATUSES))


def without_active_run(queryset: QuerySet) -> QuerySet:
    return queryset.exclude(with_active_run())


def superseded_checkpoints(*, thread_ids) -> QuerySet:
    """The checkpoints of these threads (ids, or a subquery of ids) that a newer one
    of the same (thread, namespace) supersedes: all but the one with the highest id
    (`Checkpoint.id` grows with time) in each group."""
    in_threads = Checkpoint.objects.filter(thread_id__in=thread_ids)
    newest = in_threads.order_by().values("thread_id", "checkpoint_ns").annotate(newest=Max("id")).values("newest")
    return in_threads.exclude(id__in=newest)


def has_superseded_checkpoint() -> Exists:
    """For a thread queryset: the thread has a checkpoint with a newer one in its
    namespace (index probes on `checkpoint_latest`, stopping at the first found)."""
    newer = Checkpoint.objects.filter(
        thread_id=OuterRef("thread_id"), checkpoint_ns=OuterRef("checkpoint_ns"), id__gt=OuterRef("id")
    )
    return Exists(Checkpoint.objects.filter(Exists(newer), thread_id=OuterRef("pk")))


def keep_latest_impact(*, thread_ids_queryset: QuerySet) -> dict:
    """What keep_latest would do to these threads, in two aggregate queries: how many
    are selected, how many would be skipped for an active run, and how many
    checkpoints (with their pending writes) would go."""
    counts = thread_ids_queryset.order_by().aggregate(
        threads=Count("pk"), skipped_active_run=Count("pk", filter=Q(with_active_run()))
    )
    prunable = without_active_run(thread_ids_queryset.order_by()).values("pk")
    return {**counts, "checkpoints": superseded_checkpoints(thread_ids=prunable).count()}


def deletion_impact(*, thread_ids_queryset: QuerySet) -> dict:
    """What deleting these threads would remove, counted in one query (a recursive
    CTE for the sub-threads and aggregate subqueries; no row is listed): threads
    (with their sub-threads), messages, runs, checkpoints, the projects that would be
    left empty and deleted, and the sandboxes that would be deleted with them."""
    from django.db import connection

    from projects.models import Project
    from sandboxes.models import Sandbox, SandboxState

    from .models import Checkpoint, Message, Run

    keys = ("threads", "messages", "runs", "checkpoints", "projects", "sandboxes")
    try:
        anchor, params = thread_ids_queryset.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:  # e.g. .none() or pk__in=[]: nothing would go
        return dict.fromkeys(keys, 0)
    q = connection.ops.quote_name
    t, p, s = q(Thread._meta.db_table), q(Project._meta.db_table), q(Sandbox._meta.db_table)
    m, r, c = q(Message._meta.db_table), q(Run._meta.db_table), q(Checkpoint._meta.db_table)
    live = ", ".join(f"'{state}'" for state in (SandboxState.CREATING, SandboxState.READY, SandboxState.ERROR))
    sql = f"""
        WITH RECURSIVE subtree(id) AS (
            {anchor}
            UNION SELECT child.id FROM {t} child JOIN subtree ON child.parent_thread_id = subtree.id
        ),
        emptied(id) AS (
            SELECT proj.id FROM {p} proj
            WHERE proj.id IN (SELECT project_id FROM {t} WHERE id IN (SELECT id FROM subtree))
              AND NOT EXISTS (SELECT 1 FROM {t} other
                              WHERE other.project_id = proj.id AND other.id NOT IN (SELECT id FROM subtree))
        )
        SELECT
            (SELECT COUNT(*) FROM subtree),
            (SELECT COUNT(*) FROM {m} WHERE thread_id IN (SELECT id FROM subtree)),
            (SELECT COUNT(*) FROM {r} WHERE thread_id IN (SELECT id FROM subtree)),
            (SELECT COUNT(*) FROM {c} WHERE thread_id IN (SELECT id FROM subtree)),
            (SELECT COUNT(*) FROM emptied),
            (SELECT COUNT(*) FROM {s} WHERE project_id IN (SELECT id FROM emptied) AND state IN ({live}))
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return dict(zip(keys, (int(v or 0) for v in row)))


# --- LangGraph's view of a thread's conversation -----------------------------------

LANGGRAPH_MESSAGE_TYPES = {"user": "human", "assistant": "ai", "tool": "tool", "system": "system"}


def langgraph_message(message) -> dict:
    """A stored message as a LangGraph message dict (`type`, `content`, `id`)."""
    return {
        "type": LANGGRAPH_MESSAGE_TYPES.get(message.role, message.role),
        "content": message.text,
        "id": str(message.pk),
        "name": None,
        "additional_kwargs": {},
        "response_metadata": {},
    }


def thread_values(thread_id) -> dict:
    """The thread's state as LangGraph's `values`: its messages, oldest first."""
    from .models import Message

    rows = Message.objects.filter(thread_id=thread_id).order_by("seq")
    return {"messages": [langgraph_message(m) for m in rows]}
