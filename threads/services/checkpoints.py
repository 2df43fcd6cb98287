"""Writing checkpoints, laid out like LangGraph's checkpoint tables."""

from django.db import transaction

from config.errors import Conflict, Invalid

from ..models import Checkpoint, CheckpointWrite, Thread
from .threads import lock_thread


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
    thread and namespace (422); a checkpoint id is unique per thread and namespace (409)."""
    locked = lock_thread(thread.pk)
    if run is not None and run.thread_id != locked.pk:
        raise Invalid("The run belongs to another thread.", errors={"run_id": ["Not a run of this thread."]})
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
        CheckpointWrite(
            checkpoint=cp, task_id=w["task_id"], idx=w["idx"], channel=w["channel"],
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
        Checkpoint.objects.filter(thread=thread, checkpoint_ns=checkpoint_ns)
        .order_by("-id").values_list("checkpoint_id", "metadata").first()
    )
    if latest is None:
        return None, 0
    step = (latest[1] or {}).get("step")
    return latest[0], step + 1 if isinstance(step, int) and not isinstance(step, bool) else 0
