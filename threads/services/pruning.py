"""Pruning threads in bulk: LangGraph's prune with its two strategies, and the TTL sweep.

- `delete` removes threads exactly as DELETE /api/threads/{id} does: it is the same
  set-based service (`deletion.delete_threads`).
- `keep_latest` keeps each thread and, per (thread, checkpoint_ns), only the newest
  checkpoint (the highest id) with its pending writes; that checkpoint becomes a root
  (parent cleared) and every older checkpoint goes, its writes with it by the
  database cascade. Threads with an active run, or with nothing older to prune, are
  skipped and not counted.
Every function here costs a bounded number of queries per batch, whatever its size.
"""

from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef, Q, QuerySet
from django.utils import timezone

from config.errors import Invalid
from projects.models import Project
from projects.selectors import writable_account_ids_for

from ..models import ACTIVE_RUN_STATUSES, Checkpoint, Run, Thread
from .deletion import delete_threads
from .threads import expiry

STRATEGIES = ("delete", "keep_latest")
MAX_IDS = 1000


def prune_threads(*, user, thread_ids: list, strategy: str = "delete") -> int:
    """The API's prune: only threads the user may write count; unknown, invisible,
    read-only and duplicate ids are ignored. Returns how many threads were pruned."""
    if strategy not in STRATEGIES:
        raise Invalid(f"Unknown strategy '{strategy}'.", errors={"strategy": ["delete or keep_latest."]})
    if len(thread_ids) > MAX_IDS:
        raise Invalid(f"At most {MAX_IDS} thread ids per call.", errors={"thread_ids": [f"At most {MAX_IDS}."]})
    writable = Thread.objects.filter(
        Q(account_id__in=writable_account_ids_for(user)) | Q(created_by_id=user.pk), pk__in=set(thread_ids)
    )
    ids = list(writable.values_list("pk", flat=True))
    return prune_batch(thread_ids=ids, strategy=strategy)


def prune_batch(*, thread_ids: Iterable, strategy: str) -> int:
    """One batch, one transaction: used by the API, the command and the TTL sweeper."""
    if strategy == "delete":
        return delete_threads(thread_ids=thread_ids)
    if strategy == "keep_latest":
        return keep_latest_checkpoints(thread_ids=thread_ids)
    raise Invalid(f"Unknown strategy '{strategy}'.", errors={"strategy": ["delete or keep_latest."]})


def without_active_run(queryset: QuerySet) -> QuerySet:
    return queryset.exclude(Exists(Run.objects.filter(thread_id=OuterRef("pk"), status__in=ACTIVE_RUN_STATUSES)))


@transaction.atomic
def keep_latest_checkpoints(*, thread_ids: Iterable) -> int:
    """Four statements whatever the batch: lock the threads (no new run can start on
    them meanwhile), find the threads with older checkpoints, delete those older
    checkpoints (their writes go by the cascade), make the newest ones roots."""
    ids = list(
        without_active_run(Thread.objects.select_for_update(of=("self",)).filter(pk__in=list(thread_ids)))
        .order_by("pk").values_list("pk", flat=True)
    )
    if not ids:
        return 0
    newest = (
        Checkpoint.objects.filter(thread_id__in=ids).order_by().values("thread_id", "checkpoint_ns")
        .annotate(newest=Max("id")).values("newest")
    )
    older = Checkpoint.objects.filter(thread_id__in=ids).exclude(id__in=newest)
    pruned = set(older.order_by().values_list("thread_id", flat=True).distinct())
    if pruned:
        older._raw_delete(older.db)
    Checkpoint.objects.filter(thread_id__in=ids, parent_checkpoint_id__isnull=False).update(parent_checkpoint_id=None)
    return len(pruned)


def sweep_expired_threads(*, now=None, limit: int | None = None, strategy: str | None = None) -> int:
    """Prune threads whose TTL has expired (`expires_at <= now`), skipping threads
    with an active run. On PostgreSQL the threads are claimed with
    `FOR UPDATE SKIP LOCKED`, so two sweepers never take the same thread. With
    `keep_latest` the expiry is re-armed (another TTL from now)."""
    from django.conf import settings

    conf = settings.THREAD_TTL
    now = now or timezone.now()
    limit = limit or conf.get("sweep_limit", 1000)
    strategy = strategy or conf.get("strategy", "delete")
    with transaction.atomic():
        due = without_active_run(Thread.objects.filter(expires_at__lte=now)).order_by("expires_at", "pk")
        if strategy == "delete":
            # The deletion locks projects before it deletes thread rows; take the
            # projects' locks first here too, so a sweep and an API delete always lock
            # in the same order (never a deadlock).
            projects = due.values("project_id")[:limit]
            list(Project.objects.select_for_update().filter(pk__in=projects).order_by("pk").values_list("pk", flat=True))
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        ids = list(due.values_list("pk", flat=True)[:limit])
        if not ids:
            return 0
        pruned = prune_batch(thread_ids=ids, strategy=strategy)
        if strategy == "keep_latest":
            rearm_expiry(thread_ids=ids, now=now)
        return pruned


def rearm_expiry(*, thread_ids: list, now) -> None:
    """Another TTL from now (two statements: threads with their own TTL, the rest)."""
    ttls = set(Thread.objects.filter(pk__in=thread_ids).values_list("ttl_minutes", flat=True).distinct())
    for ttl in ttls:
        Thread.objects.filter(pk__in=thread_ids, ttl_minutes=ttl).update(expires_at=expiry(ttl, now))
