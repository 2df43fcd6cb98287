"""Thread time-to-live: threads that expire by themselves.

The rule. A thread has a TTL when it has its own (`ttl_minutes`, set with `ttl` on
create or update) or, failing that, when `THREAD_TTL["default_ttl"]` is set. Its
expiry is stored in `expires_at` = the start of its idleness + its TTL
(`threads.services.threads.expiry`):
- set when the thread is created, and when its `ttl` is set or changed (the clock
  starts again then);
- moved along by its activity — a message, a run starting, a run ending
  (`threads.services.threads.activity`, which also sets `last_activity_at`);
- null when it has no TTL: it never expires.
A change of the default TTL reaches a thread at its next activity; `expires_at` is
never recomputed behind its back.

The sweeper (the beat task `threads.tasks.sweep_expired_threads`) prunes up to
`THREAD_TTL["sweep_limit"]` threads with `expires_at <= now` through the prune
service, each with its own strategy (`ttl_strategy`, set with `ttl: {ttl, strategy}`)
or else `THREAD_TTL["strategy"]`, skipping threads with an active run (their
run's end moves their expiry anyway) — for `delete`, also threads with an active run
in a sub-thread at any depth (the deletion would take the busy sub-thread with it).
With `delete` they are gone; with `keep_latest` they keep their latest checkpoints
and their expiry is re-armed: another TTL from the sweep.
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, DateTimeField, Q, Value, When
from django.utils import timezone

from config.observability import destructive_operation
from projects.models import Project
from receipts.context import acting

from ..models import Thread
from ..selectors import with_active_run, without_active_run
from .deletion import collect_subtrees
from .pruning import STRATEGIES, prune_batch, validate_strategy
from .threads import expiry


def sweep_expired_threads(*, now=None, limit: int | None = None, strategy: str | None = None) -> int:
    """One sweep, one transaction: claim the expired threads, prune them, re-arm
    (keep_latest). Threads without a strategy of their own use `strategy` (default:
    `THREAD_TTL["strategy"]`). Returns how many threads were pruned."""
    conf = settings.THREAD_TTL
    now = now or timezone.now()
    limit = limit or conf["sweep_limit"]
    default = strategy or conf["strategy"]
    validate_strategy(default)
    pruned = 0
    with destructive_operation("ttl_sweep", strategy=default), acting(source="ttl", user=None), \
            transaction.atomic():
        for group in STRATEGIES:  # `delete` first: it locks projects, then threads
            scope = Q(ttl_strategy=group) | Q(ttl_strategy="") if group == default else Q(ttl_strategy=group)
            claimed = claim_expired_threads(now=now, limit=limit, lock_projects=group == "delete", scope=scope)
            if not claimed:
                continue
            limit -= len(claimed)
            pruned += prune_batch(thread_ids=list(claimed), strategy=group)
            if group == "keep_latest":
                rearm_expiry(claimed=claimed, now=now)
            if limit <= 0:
                break
    return pruned


def claim_expired_threads(*, now, limit: int, lock_projects: bool, scope: Q = Q()) -> dict:
    """{thread id: ttl_minutes} of up to `limit` expired threads without an active
    run, locked until the transaction ends.

    On PostgreSQL the rows are taken with `FOR UPDATE SKIP LOCKED`: a second sweeper
    takes other threads, never the same ones, and never waits. A thread being written
    (a message, a run starting: they hold its lock and move its expiry) is skipped, and
    one whose write committed meanwhile is re-checked by PostgreSQL against its new
    `expires_at`, so a run that has just started keeps its thread.

    For a delete (`lock_projects`), the threads' projects are locked first — skipping
    projects another transaction holds — because the deletion locks projects before
    it deletes thread rows: a sweep and an API delete always lock in the same order
    and never deadlock. Then their sub-threads are locked (skipping those another
    transaction holds, in id order, as the deletion locks them) and a thread is left
    out when one of them is locked elsewhere or has an active run (`busy_trees`).
    """
    skip_locked = connection.features.has_select_for_update_skip_locked
    due = without_active_run(Thread.objects.filter(scope, expires_at__lte=now)).order_by("expires_at", "pk")
    if lock_projects:
        projects = (
            Project.objects.select_for_update(skip_locked=skip_locked)
            .filter(pk__in=due.values("project_id")[:limit]).order_by("pk")
        )
        due = due.filter(project_id__in=list(projects.values_list("pk", flat=True)))
    claimed = due.select_for_update(skip_locked=skip_locked, of=("self",))[:limit]
    claimed = {pk: (ttl, project_id) for pk, ttl, project_id in claimed.values_list("pk", "ttl_minutes", "project_id")}
    busy = busy_trees(claimed, skip_locked=skip_locked) if lock_projects and claimed else set()
    if busy:  # tried again a minute on, behind the threads due by then: never holding the head of the queue
        Thread.objects.filter(pk__in=busy).update(expires_at=now + BUSY_RETRY)
    return {pk: ttl for pk, (ttl, _) in claimed.items() if pk not in busy}


# How long an expired thread whose sub-thread is busy waits before the sweep tries it again.
BUSY_RETRY = timedelta(minutes=1)


def busy_trees(claimed: dict, *, skip_locked: bool) -> set:
    """The claimed roots {id: (ttl, project id)} that must stay: a sub-thread (any
    depth) has an active run, or is held by another transaction (a run starting on
    it). Three queries: the subtrees, their lock, their active runs."""
    members = collect_subtrees(root_ids=list(claimed), project_ids={p for _, p in claimed.values()}, by_root=True)
    to_pk = Thread._meta.pk.to_python  # (an extra column: SQLite gives the hex)
    pairs = [(to_pk(m.root_id), m.id) for m in members if to_pk(m.root_id) != m.id]
    if not pairs:
        return set()
    below = {member for _, member in pairs}
    locked = Thread.objects.select_for_update(skip_locked=skip_locked, no_key=True).filter(pk__in=below).order_by("pk")
    free = set(locked.values_list("pk", flat=True))
    active = set(Thread.objects.filter(with_active_run(), pk__in=below).values_list("pk", flat=True))
    return {root for root, member in pairs if member not in free or member in active}


def rearm_expiry(*, claimed: dict, now) -> None:
    """Another TTL from `now` for each claimed thread {id: ttl_minutes}: one UPDATE."""
    own_ttls = {ttl for ttl in claimed.values() if ttl is not None}
    Thread.objects.filter(pk__in=list(claimed)).update(
        expires_at=Case(
            *(When(ttl_minutes=ttl, then=Value(expiry(ttl, now))) for ttl in sorted(own_ttls)),
            default=Value(expiry(None, now)), output_field=DateTimeField(),
        )
    )
