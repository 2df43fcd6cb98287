"""Writing checkpoints, laid out like LangGraph's checkpoint tables."""

from django.db import connection, router, transaction
from django.db.models import Count, QuerySet
from django.db.models.sql import DeleteQuery

from config.errors import Conflict, Invalid

from ..models import Checkpoint, CheckpointWrite, Thread
from .threads import ensure_open, ensure_run_of, lock_thread


@transaction.atomic
def put_checkpoint(
    *,
    thread: Thread,
    checkpoint_id: str,
    checkpoint: dict,
    metadata: dict | None = None,
    checkpoint_ns: str = "",
    parent_checkpoint_id: str | None = None,
    run=None,
    writes: list[dict] | None = None,
) -> Checkpoint:
    """Store a checkpoint and its pending writes. The parent must exist in the same
    thread and namespace (422); a checkpoint id is unique per thread and namespace (409);
    a closed thread takes none (409), as it takes no message or run."""
    locked = lock_thread(thread.pk)
    ensure_open(locked)
    ensure_run_of(locked, run)
    existing = Checkpoint.objects.filter(thread=locked, checkpoint_ns=checkpoint_ns)
    if parent_checkpoint_id and not existing.filter(checkpoint_id=parent_checkpoint_id).exists():
        raise Invalid(
            f"Parent checkpoint '{parent_checkpoint_id}' does not exist in this thread and namespace.",
            errors={"parent_checkpoint_id": ["No such checkpoint."]},
        )
    if existing.filter(checkpoint_id=checkpoint_id).exists():
        raise Conflict(f"Checkpoint '{checkpoint_id}' already exists in this thread and namespace.")
    return store_checkpoint(
        thread=locked, checkpoint_ns=checkpoint_ns, checkpoint_id=checkpoint_id,
        parent_checkpoint_id=parent_checkpoint_id, checkpoint=checkpoint, metadata=metadata or {},
        run=run, writes=writes or [],
    )


def store_checkpoint(*, thread, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, run, writes):
    """Insert a checkpoint and its writes (the caller holds the thread locked)."""
    keys = [(w["task_id"], w["idx"]) for w in writes]
    if len(set(keys)) != len(keys):
        raise Invalid("Pending writes must be unique by (task_id, idx).", errors={"writes": ["Duplicate key."]})
    cp = Checkpoint.objects.create(
        thread=thread, checkpoint_ns=checkpoint_ns, checkpoint_id=checkpoint_id,
        parent_checkpoint_id=parent_checkpoint_id, checkpoint=checkpoint, metadata=metadata, run=run,
    )
    CheckpointWrite.objects.bulk_create(
        CheckpointWrite.for_checkpoint(
            cp, task_id=w["task_id"], idx=w["idx"], channel=w["channel"],
            type=w.get("type", ""), value=w.get("value"), task_path=w.get("task_path", ""),
        )
        for w in writes
    )
    return cp


def parent_and_step(*, thread, checkpoint_ns: str = "") -> tuple[str | None, int]:
    """For a new checkpoint on top of the thread's latest: the parent's id and the
    new checkpoint's `step` (the parent's + 1, as LangGraph numbers supersteps; 0 for
    a first checkpoint or a parent without one). One query."""
    latest = (
        Checkpoint.objects.newest_first(thread=thread, checkpoint_ns=checkpoint_ns)
        .values_list("checkpoint_id", "metadata").first()
    )
    if latest is None:
        return None, 0
    step = (latest[1] or {}).get("step")
    return latest[0], step + 1 if isinstance(step, int) and not isinstance(step, bool) else 0


def delete_checkpoints(checkpoints: QuerySet, *, thread_ids=None) -> dict:
    """Delete these checkpoints and their pending writes, set-based: no row is loaded,
    no per-row trigger fires (writes have no foreign key to their checkpoint). On
    PostgreSQL one statement (the writes go in a data-modifying CTE, and the deleted
    checkpoints are counted per thread in the same statement), three elsewhere.
    `thread_ids`, when the caller knows them, lets the writes be found by their
    thread's index. Returns {thread id: checkpoints deleted} (for the receipt).

    For checkpoints deleted while their thread (or run) stays; a deleted thread or run
    takes its checkpoints and writes by the database cascade. Returns how many
    checkpoints were deleted.
    """
    ids = checkpoints.order_by().values("pk")
    writes = CheckpointWrite.objects.filter(checkpoint_id__in=ids)
    if thread_ids is not None:
        writes = writes.filter(thread_id__in=thread_ids)
    db = router.db_for_write(Checkpoint)
    if connection.vendor != "postgresql":
        counts = dict(checkpoints.order_by().values("thread_id").annotate(n=Count("pk")).values_list("thread_id", "n"))
        writes._raw_delete(db)
        checkpoints.order_by()._raw_delete(db)
        return counts
    writes_sql, writes_params = delete_sql(writes)
    checkpoints_sql, checkpoints_params = delete_sql(checkpoints.order_by())
    thread = connection.ops.quote_name(Checkpoint._meta.get_field("thread").column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH gone_writes AS ({writes_sql}), gone AS ({checkpoints_sql} RETURNING {thread}) "
            f"SELECT {thread}, COUNT(*) FROM gone GROUP BY {thread}",
            (*writes_params, *checkpoints_params),
        )
        rows = cursor.fetchall()
    field = Checkpoint._meta.get_field("thread").target_field
    return {field.to_python(thread_id): n for thread_id, n in rows}


def delete_sql(queryset: QuerySet) -> tuple[str, tuple]:
    """The SQL of a set-based `DELETE` of this queryset (what `_raw_delete` runs)."""
    query = queryset.query.clone()
    query.__class__ = DeleteQuery
    return query.get_compiler(router.db_for_write(queryset.model)).as_sql()
