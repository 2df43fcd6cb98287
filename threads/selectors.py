"""Reads on threads that return querysets."""

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    Case, CharField, Count, Exists, JSONField, Max, OuterRef, Prefetch, Q, QuerySet, Subquery, Value, When,
)
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Coalesce

from projects.selectors import account_ids_for, visible_to, writable_account_ids_for

from .models import ACTIVE_RUN_STATUSES, Approval, ApprovalStatus, Checkpoint, Run, RunStatus, Thread, ThreadStatus


def threads_for(user) -> QuerySet:
    return visible_to(Thread.objects.all(), user)


# --- LangGraph's view of threads ------------------------------------------------------
# A thread's LangGraph `status` comes from its lifecycle status and its last run:
# running -> busy, awaiting -> interrupted, idle or closed -> error when the last run
# failed (error, timeout), else idle. `values` are the latest root checkpoint's.

LANGGRAPH_STATUSES = ("idle", "busy", "interrupted", "error")
FAILED_RUN_STATUSES = (RunStatus.ERROR, RunStatus.TIMEOUT)


def langgraph_status(status: str, last_run_status: str | None) -> str:
    if status == ThreadStatus.RUNNING:
        return "busy"
    if status == ThreadStatus.AWAITING:
        return "interrupted"
    return "error" if last_run_status in FAILED_RUN_STATUSES else "idle"


def langgraph_threads(queryset: QuerySet) -> QuerySet:
    """Threads with what LangGraph's shape needs, in one query plus one for the
    pending approvals (the interrupts) of the page: the latest root checkpoint and
    its time, and the last run's status."""
    latest = Checkpoint.objects.newest_first(thread_id=OuterRef("pk"))
    return queryset.annotate(
        lg_checkpoint=Subquery(latest.values("checkpoint")[:1], output_field=JSONField()),
        state_updated_at=Subquery(latest.values("created_at")[:1]),
        last_run_status=Subquery(Run.objects.filter(thread_id=OuterRef("pk")).order_by("-seq").values("status")[:1]),
    ).prefetch_related(
        Prefetch("approvals", queryset=Approval.objects.filter(status=ApprovalStatus.PENDING).order_by("created_at"),
                 to_attr="pending_approvals")
    )


def langgraph_status_conditions() -> dict[str, Q]:
    """On a `langgraph_threads` queryset: the condition of each LangGraph status (the
    SQL of `langgraph_status`)."""
    failed = Q(last_run_status__in=FAILED_RUN_STATUSES)
    settled = Q(status__in=[ThreadStatus.IDLE, ThreadStatus.CLOSED])
    return {
        "busy": Q(status=ThreadStatus.RUNNING),
        "interrupted": Q(status=ThreadStatus.AWAITING),
        "error": settled & failed,
        "idle": settled & (Q(last_run_status__isnull=True) | ~failed),
    }


def filter_langgraph_status(queryset: QuerySet, status: str) -> QuerySet:
    """On a `langgraph_threads` queryset: the threads with this LangGraph status."""
    return queryset.filter(langgraph_status_conditions()[status])


def filter_json_containment(queryset: QuerySet, path: str, wanted: dict) -> QuerySet:
    """The JSON at `path` (a field, or `field__key`) contains `wanted` (LangGraph's
    metadata and values filters). PostgreSQL: one `@>` (on thread metadata the GIN
    index serves it). SQLite has no containment: each top-level key of `wanted` must
    equal its value there."""
    if not wanted:
        return queryset
    if connection.vendor == "postgresql":
        return queryset.filter(**{f"{path}__contains": wanted})
    field, *keys = path.split("__")
    base = field
    for key in keys:
        base = KeyTransform(key, base)
    for i, (key, value) in enumerate(wanted.items()):
        alias = f"_json_key_{i}"
        queryset = queryset.alias(**{alias: KeyTransform(str(key), base)}).filter(**{alias: value})
    return queryset


THREAD_SORT_FIELDS = {"thread_id": "id", "status": "status", "created_at": "created_at",
                      "updated_at": "updated_at", "state_updated_at": "state_updated_at"}


def search_langgraph_threads(queryset: QuerySet, *, metadata: dict | None = None, values: dict | None = None,
                             ids=None, status: str | None = None, sort_by: str = "created_at",
                             sort_order: str = "desc") -> QuerySet:
    """LangGraph's thread search over `queryset` (already limited to what the caller
    may read): metadata and values containment, ids, LangGraph status, sorted."""
    qs = langgraph_threads(queryset)
    if ids:
        qs = qs.filter(pk__in=ids)
    qs = filter_json_containment(qs, "metadata", metadata)
    qs = filter_json_containment(qs, "lg_checkpoint__channel_values", values)
    if status:
        qs = filter_langgraph_status(qs, status)
    field = THREAD_SORT_FIELDS[sort_by]
    if field == "state_updated_at":  # as shown: a thread without a checkpoint shows its updated_at
        qs, field = qs.annotate(state_sort=Coalesce("state_updated_at", "updated_at")), "state_sort"
    if field == "status":  # as shown: LangGraph's status (an `error` thread is `idle` underneath)
        qs, field = qs.annotate(status_sort=Case(
            *[When(condition, then=Value(name)) for name, condition in langgraph_status_conditions().items()],
            output_field=CharField())), "status_sort"
    return qs.order_by(f"-{field}" if sort_order == "desc" else field, "-id" if sort_order == "desc" else "id")


def thread_history(*, thread, checkpoint_ns: str = "", before: str | None = None, metadata: dict | None = None,
                   limit: int = 10, checkpoint_id: str | None = None) -> list:
    """The thread's checkpoints in a namespace, newest first: LangGraph's history.
    `before`: only those older than that checkpoint (404 semantics left to the
    caller: an unknown one gives nothing); `checkpoint_id`: only that one, as
    LangGraph's checkpointers list a config that names one."""
    qs = Checkpoint.objects.newest_first(thread=thread, checkpoint_ns=checkpoint_ns)
    if checkpoint_id:
        qs = qs.filter(checkpoint_id=checkpoint_id)
    if before:
        qs = qs.filter(id__lt=Subquery(qs.filter(checkpoint_id=before).values("id")[:1]))
    qs = filter_json_containment(qs, "metadata", metadata)
    return list(qs[:limit])


def latest_checkpoint(*, thread_id, checkpoint_ns: str = "") -> Checkpoint | None:
    """The thread's newest checkpoint in a namespace (its current state), or None."""
    return Checkpoint.objects.newest_first(thread_id=thread_id, checkpoint_ns=checkpoint_ns).first()


def channel_values(checkpoint: Checkpoint | None) -> dict:
    """A checkpoint's channel values (LangGraph's `values`); {} without one."""
    values = (checkpoint.checkpoint or {}).get("channel_values") if checkpoint is not None else None
    return values if isinstance(values, dict) else {}


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
    are selected, how many would be skipped — for an active run, or with nothing to
    prune (no checkpoint older than the latest of its namespace) — and how many
    checkpoints (with their pending writes) would go."""
    counts = thread_ids_queryset.order_by().aggregate(
        threads=Count("pk"), skipped_active_run=Count("pk", filter=Q(with_active_run())),
        skipped_nothing_to_prune=Count("pk", filter=~Q(with_active_run()) & ~Q(has_superseded_checkpoint())),
    )
    prunable = without_active_run(thread_ids_queryset.order_by()).values("pk")
    return {**counts, "checkpoints": superseded_checkpoints(thread_ids=prunable).count()}


def referenced_by_a_trigger(project_id: str, subtree: str) -> str:
    """SQL: the project (`project_id`, a column) has an agent trigger that stays when
    the threads of the CTE `subtree` go — one with no thread (it starts a new thread of
    the project each time), or on a thread outside the subtree. Such a project is not
    left empty by the deletion (`empty_projects`, and the admin's impact count)."""
    from agents.models import AgentTrigger

    q = connection.ops.quote_name
    return (f"EXISTS (SELECT 1 FROM {q(AgentTrigger._meta.db_table)} tr WHERE tr.project_id = {project_id}"
            f" AND (tr.thread_id IS NULL OR tr.thread_id NOT IN (SELECT id FROM {subtree})))")


def deletion_impact(*, thread_ids_queryset: QuerySet) -> dict:
    """What deleting these threads would remove, counted in one query (a recursive
    CTE for the sub-threads and aggregate subqueries; no row is listed): threads
    (with their sub-threads), messages, runs, checkpoints, the projects that would be
    left empty and deleted, and the sandboxes that would be deleted with them."""
    from django.db import connection

    from projects.models import Project
    from sandboxes.models import Sandbox, SandboxState

    from .models import Checkpoint, Run

    keys = ("threads", "messages", "runs", "checkpoints", "projects", "sandboxes")
    try:
        anchor, params = thread_ids_queryset.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:  # e.g. .none() or pk__in=[]: nothing would go
        return dict.fromkeys(keys, 0)
    q = connection.ops.quote_name
    t, p, s = q(Thread._meta.db_table), q(Project._meta.db_table), q(Sandbox._meta.db_table)
    r, c = q(Run._meta.db_table), q(Checkpoint._meta.db_table)
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
              AND NOT {referenced_by_a_trigger("proj.id", "subtree")}
        )
        SELECT
            (SELECT COUNT(*) FROM subtree),
            (SELECT COALESCE(SUM(last_message_seq), 0) FROM {t} WHERE id IN (SELECT id FROM subtree)),
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


def state_and_new_messages(thread_id) -> tuple[dict, list]:
    """The thread's current state as LangGraph's `values` — the latest root
    checkpoint's channel values, its `messages` channel followed by the messages
    stored since that checkpoint (its metadata's `message_seq`) — and those stored
    messages. Two queries."""
    from .message_format import from_stored
    from .models import Message

    latest = latest_checkpoint(thread_id=thread_id)
    values = dict(channel_values(latest))
    new = list(Message.objects.filter(thread_id=thread_id, seq__gt=state_message_seq(latest),
                                      rolled_back=False).order_by("seq"))
    if new or "messages" in values:
        values["messages"] = list(values.get("messages") or []) + [from_stored(m) for m in new]
    return values, new


def state_message_seq(checkpoint: Checkpoint | None) -> int:
    """The seq of the last stored message a checkpoint's state holds (its metadata's
    `message_seq`; 0 without one): the messages after it are not in that state yet."""
    seen = (checkpoint.metadata or {}).get("message_seq", 0) if checkpoint is not None else 0
    return seen if isinstance(seen, int) else 0


def thread_values(thread_id) -> dict:
    """The thread's current state as LangGraph's `values` (see `state_and_new_messages`)."""
    return state_and_new_messages(thread_id)[0]
