"""The agent-thread status machine: idle ⇄ running/awaiting, and closed (terminal).

- cancel: running or awaiting → idle (active run interrupted, pending approvals
  cancelled); idempotent on idle; 409 on closed.
- close: only idle closes; its idle sub-threads close with it; a running or awaiting
  sub-thread, or the thread itself not idle, is a 409 and nothing changes.
- force_close_threads: set-based cancel-and-close, used when an agent is deleted.
All take the thread row locks first (the same order as run creation), so a close and a
new turn sent at once serialise: exactly one wins.
"""

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict

from ..models import Approval, ApprovalStatus, Run, Thread, ThreadStatus
from .deletion import collect_subtrees
from .runs import interrupt_runs
from .threads import lock_thread

BUSY = (ThreadStatus.RUNNING, ThreadStatus.AWAITING)


def stop_activity(*, thread_ids: list) -> None:
    """Interrupt the threads' active runs and cancel their pending approvals (locked threads)."""
    interrupt_runs(runs=Run.objects.filter(thread_id__in=thread_ids))
    Approval.objects.filter(thread_id__in=thread_ids, status=ApprovalStatus.PENDING).update(
        status=ApprovalStatus.CANCELLED, decided_at=timezone.now()
    )


@transaction.atomic
def cancel_thread(*, thread: Thread) -> Thread:
    locked = lock_thread(thread.pk)
    if locked.status == ThreadStatus.CLOSED:
        raise Conflict("The thread is closed.")
    if locked.status in BUSY:
        stop_activity(thread_ids=[locked.pk])
        Thread.objects.filter(pk=locked.pk).update(status=ThreadStatus.IDLE, updated_at=timezone.now())
        locked.refresh_from_db()
    return locked


@transaction.atomic
def close_thread(*, thread: Thread) -> Thread:
    locked = lock_thread(thread.pk)
    if locked.status == ThreadStatus.CLOSED:
        raise Conflict("The thread is already closed.")
    if locked.status in BUSY:
        raise Conflict(f"The thread is {locked.status}: cancel it first, then close it.")
    subtree = [t.id for t in collect_subtrees(root_ids=[locked.pk], project_ids=[locked.project_id])]
    rows = list(
        Thread.objects.select_for_update().filter(pk__in=subtree).order_by("pk").values_list("pk", "status")
    )
    busy = [str(pk) for pk, status in rows if status in BUSY]
    if busy:
        raise Conflict(f"Sub-thread {busy[0]} is running or awaiting: cancel it first, then close.")
    now = timezone.now()
    Thread.objects.filter(pk__in=[pk for pk, status in rows if status != ThreadStatus.CLOSED]).update(
        status=ThreadStatus.CLOSED, completed_at=now, updated_at=now
    )
    locked.refresh_from_db()
    return locked


@transaction.atomic
def force_close_threads(*, thread_ids: Iterable) -> int:
    """Cancel and close these threads, whatever their status; returns how many closed."""
    ids = list(
        Thread.objects.select_for_update().filter(pk__in=list(thread_ids)).exclude(status=ThreadStatus.CLOSED)
        .order_by("pk").values_list("pk", flat=True)
    )
    if not ids:
        return 0
    stop_activity(thread_ids=ids)
    now = timezone.now()
    return Thread.objects.filter(pk__in=ids).update(status=ThreadStatus.CLOSED, completed_at=now, updated_at=now)
