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
run's end moves their expiry anyway). With `delete` they are gone; with
`keep_latest` they keep their latest checkpoints and their expiry is re-armed:
another TTL from the sweep.
"""

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, DateTimeField, Q, Value, When
from django.utils import timezone

from config.observability import destructive_operation
from projects.models import Project
from receipts.context import acting

from ..models import Thread
from ..selectors import without_active_run
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
    and never deadlock.
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
    return dict(claimed.values_list("pk", "ttl_minutes"))


def rearm_expiry(*, claimed: dict, now) -> None:
    """Another TTL from `now` for each claimed thread {id: ttl_minutes}: one UPDATE."""
    own_ttls = {ttl for ttl in claimed.values() if ttl is not None}
    Thread.objects.filter(pk__in=list(claimed)).update(
        expires_at=Case(
            *(When(ttl_minutes=ttl, then=Value(expiry(ttl, now))) for ttl in sorted(own_ttls)),
            default=Value(expiry(None, now)), output_field=DateTimeField(),
        )
    )
