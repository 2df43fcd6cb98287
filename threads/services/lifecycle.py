"""The agent-thread status machine: idle ⇄ running/awaiting, and closed (terminal).

- cancel: running or awaiting → idle (active run interrupted, pending approvals
  cancelled); idempotent on idle; 409 on closed.
- close: only idle closes; its idle sub-threads close with it; a running or awaiting
  sub-thread, or the thread itself not idle, is a 409 and nothing changes.
- close_threads: the close for a batch of threads, set-based, one receipt for the batch
  (close_thread is it for one).
- force_close_threads: set-based cancel-and-close, used when an agent is deleted.
- open_thread / start_turn: a turn (user message + run) starts only on an idle thread.
All take the thread row locks first (the same order as run creation), so a close and a
new turn sent at once serialise: exactly one wins. The locks are `FOR NO KEY UPDATE`
(see `lock_thread`): a close holding a parent never blocks the commit of a sub-thread's
turn, which checks its parent's key.
"""

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, Invalid, NotFound
from receipts import services as receipts
from receipts.models import DeletionKind

from ..models import ACTIVE_RUN_STATUSES, Approval, ApprovalStatus, Run, RunStatus, Thread, ThreadStatus
from ..tools import validate_tools
from .deletion import collect_subtrees
from .messages import append_messages
from .runs import create_run, interrupt_runs, schedule_execution, set_thread_status
from .threads import create_thread, lock_thread
from .webhooks import schedule_webhooks

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


def cancel_threads(*, thread_ids: Iterable) -> int:
    """`cancel_thread` set-based: these threads are locked (all of them, in id order:
    a caller about to change them, as an agent's deletion clears their agent, holds
    them before anything else can), and the busy ones have their active runs
    interrupted and pending approvals cancelled, and go idle (closed ones stay as they
    are). Returns how many were cancelled."""
    locked = Thread.objects.select_for_update(no_key=True).filter(pk__in=list(thread_ids)).order_by("pk")
    ids = [pk for pk, status in locked.values_list("pk", "status") if status in BUSY]
    if ids:
        stop_activity(thread_ids=ids)
        Thread.objects.filter(pk__in=ids).update(status=ThreadStatus.IDLE, updated_at=timezone.now())
    return len(ids)


def close_thread(*, thread: Thread) -> Thread:
    """`close_threads` for one thread: 404 if it is gone, 409 with the reason it was
    skipped (closed, busy, a busy sub-thread); returns it closed."""
    closed, skipped = close_threads(thread_ids=[thread.pk])
    if not closed:
        if skipped:
            raise Conflict(next(iter(skipped)))
        raise NotFound("Thread not found.")
    closed_thread = Thread.objects.filter(pk=thread.pk).first()
    if closed_thread is None:  # deleted since the close committed
        raise NotFound("Thread not found.")
    return closed_thread


@transaction.atomic
def close_threads(*, thread_ids: Iterable) -> tuple[int, dict]:
    """Close these threads, each with its idle sub-threads; one that is closed, busy or
    has a busy sub-thread is skipped with the reason (`close_thread`'s 409) —
    set-based, whatever the batch: the threads locked in one query (in id order, as
    `lock_thread`), their subtrees collected in one and locked in one, one UPDATE, and
    one receipt per account. Returns (how many closed, {reason: how many skipped}).
    The admin's action and its background job close a batch at a time with it."""
    skipped = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    roots = {}
    locked = (Thread.objects.select_for_update(no_key=True).filter(pk__in=list(thread_ids)).order_by("pk")
              .values_list("pk", "status", "project_id"))
    for pk, status, project_id in locked:
        if status == ThreadStatus.CLOSED:
            skip("The thread is already closed.")
        elif status in BUSY:
            skip(f"The thread is {status}: cancel it first, then close it.")
        else:
            roots[pk] = project_id
    if not roots:
        return 0, skipped
    members = collect_subtrees(root_ids=list(roots), project_ids=set(roots.values()), by_root=True)
    status_of = dict(Thread.objects.select_for_update(no_key=True).filter(pk__in={m.id for m in members})
                     .order_by("pk").values_list("pk", "status"))
    subtree_of, account_of = {}, {}
    for member in members:
        root = Thread._meta.pk.to_python(member.root_id)  # (an extra column: SQLite gives the hex)
        subtree_of.setdefault(root, []).append(member.id)
        account_of[member.id] = member.account_id
    accepted, closing = [], set()
    for root in sorted(roots):
        subtree = subtree_of.get(root)
        if subtree is None:  # gone meanwhile
            continue
        busy = sorted(t for t in subtree if status_of.get(t) in BUSY)
        if busy:
            skip(f"Sub-thread {busy[0]} is running or awaiting: cancel it first, then close.")
            continue
        accepted.append(root)
        closing.update(t for t in subtree if status_of.get(t) not in (None, ThreadStatus.CLOSED))
    now = timezone.now()
    Thread.objects.filter(pk__in=closing).update(status=ThreadStatus.CLOSED, completed_at=now, updated_at=now)
    tallies = {}
    for root in accepted:
        tallies.setdefault(account_of[root], receipts.Tally()).root_ids.append(root)
    for thread_id in closing:
        tallies.setdefault(account_of[thread_id], receipts.Tally()).threads_closed += 1
    receipts.record(DeletionKind.THREAD_CLOSE, tallies)
    return len(accepted), skipped


@transaction.atomic
def force_close_threads(*, thread_ids: Iterable) -> int:
    """Cancel and close these threads, whatever their status; returns how many closed."""
    account_of = dict(
        Thread.objects.select_for_update(no_key=True).filter(pk__in=list(thread_ids))
        .exclude(status=ThreadStatus.CLOSED).order_by("pk").values_list("pk", "account_id")
    )
    if not account_of:
        return 0
    ids = list(account_of)
    stop_activity(thread_ids=ids)
    now = timezone.now()
    closed = Thread.objects.filter(pk__in=ids).update(status=ThreadStatus.CLOSED, completed_at=now, updated_at=now)
    tallies = {}
    for thread_id, account_id in account_of.items():
        tally = tallies.setdefault(account_id, receipts.Tally())
        tally.root_ids.append(thread_id)
        tally.threads_closed += 1
    receipts.record(DeletionKind.THREAD_CLOSE, tallies)
    return closed


@transaction.atomic
def open_thread(
    *, project, agent, created_by=None, instructions: str | None = None, model: str = "", tools=None,
    message: str | None = None,
) -> Thread:
    """An agent thread, and its first turn when `message` is given, in one transaction
    (no thread is left behind without the turn it was asked for). `tools` must come
    from the Cerca list (422 otherwise)."""
    thread = create_thread(
        project=project, agent=agent, created_by=created_by, instructions=instructions, model=model,
        tools=validate_tools(tools),
    )
    if message:
        start_turn(thread=thread, message=message)
    return thread


@transaction.atomic
def start_turn(*, thread: Thread, message: str, model: str = "") -> Run:
    """A turn: the user's message and a run answering it, atomically. Only an idle
    thread takes a turn (409 otherwise: running, awaiting or closed)."""
    locked = lock_thread(thread.pk)
    if locked.status != ThreadStatus.IDLE:
        detail = "The thread is closed." if locked.status == ThreadStatus.CLOSED else (
            f"The thread is {locked.status}: wait for the turn to finish or cancel it.")
        raise Conflict(detail)
    append_messages(thread=locked, role="user", contents=[[{"type": "text", "text": message}]], agent=None)
    return create_run(thread=locked, agent=locked.agent, message=message, model=model)


@transaction.atomic
def resolve_approval(*, thread: Thread, approval_id, decision: str) -> Approval:
    """Approve or deny a pending approval; the paused turn then resumes or ends."""
    if decision not in ("approve", "deny"):
        raise Invalid("decision must be 'approve' or 'deny'.", errors={"decision": ["approve or deny."]})
    locked = lock_thread(thread.pk)
    approval = Approval.objects.select_for_update().filter(pk=approval_id, thread=locked).first()
    if approval is None:
        raise NotFound("Approval not found.")
    if approval.status != ApprovalStatus.PENDING:
        raise Conflict(f"The approval is already {approval.status}.")
    approval.status = ApprovalStatus.APPROVED if decision == "approve" else ApprovalStatus.DENIED
    approval.decided_at = timezone.now()
    approval.save(update_fields=["status", "decided_at"])
    run = Run.objects.filter(pk=approval.run_id, status=RunStatus.RUNNING).first()
    if run is not None and not Approval.objects.filter(run=run, status=ApprovalStatus.PENDING).exists():
        # Executing nowhere until a worker resumes it (`resume_run`): not lost with the
        # worker that paused it, which may be gone (see `recover_lost_runs`).
        Run.objects.filter(pk=run.pk).update(executor="", executor_lease=None)
        set_thread_status(locked, ThreadStatus.RUNNING)
        schedule_execution(run, approval=approval)
    return approval


def expire_approvals(*, now=None) -> int:
    """Time out pending approvals past `expires_at`: the approval `timed_out`, its run
    `timeout`, the thread idle. Set-based, thread rows locked."""
    now = now or timezone.now()
    with transaction.atomic():
        due = Approval.objects.filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
        thread_ids = list(
            Thread.objects.select_for_update(no_key=True).filter(pk__in=due.values("thread_id")).order_by("pk")
            .values_list("pk", flat=True)
        )
        if not thread_ids:
            return 0
        due = Approval.objects.filter(status=ApprovalStatus.PENDING, expires_at__lte=now, thread_id__in=thread_ids)
        run_ids = list(due.exclude(run=None).values_list("run_id", flat=True))
        expired = due.update(status=ApprovalStatus.TIMED_OUT, decided_at=now)
        Run.objects.filter(pk__in=run_ids, status__in=ACTIVE_RUN_STATUSES).update(
            status=RunStatus.TIMEOUT, error="An approval timed out.", completed_at=now, updated_at=now
        )
        schedule_webhooks(Run.objects.filter(pk__in=run_ids, status=RunStatus.TIMEOUT, completed_at=now,
                                             kwargs__has_key="webhook").values_list("pk", flat=True))
        Thread.objects.filter(pk__in=thread_ids, status=ThreadStatus.AWAITING).exclude(
            runs__status__in=ACTIVE_RUN_STATUSES
        ).update(status=ThreadStatus.IDLE, updated_at=now)
        return expired
