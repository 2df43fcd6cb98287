"""Pruning threads in bulk: LangGraph's prune with its two strategies.

- `delete` removes threads exactly as DELETE /api/threads/{id} does: it is the same
  set-based service (`deletion.delete_threads`).
- `keep_latest` keeps each thread and, per (thread, checkpoint_ns), only the newest
  checkpoint (the highest id: `Checkpoint.id` grows with time) with its pending
  writes; that checkpoint becomes a root (parent cleared) and every older checkpoint
  goes with its writes, set-based. Threads with an active run, or
  with nothing older to prune, are skipped and not counted.

The API (`prune_threads`), the `prune_threads` command and the TTL sweeper
(`ttl.sweep_expired_threads`) all prune through `prune_batch`; every function here
costs a bounded number of queries per batch, whatever its size.
"""

from collections.abc import Iterable
from functools import cache

from django.db import connection, transaction
from django.db.models import Q

from config.errors import Invalid
from config.observability import timed_prune_batch
from projects.selectors import parse_uuid, writable_account_ids_for
from receipts import services as receipts
from receipts.models import DeletionKind

from ..models import ACTIVE_RUN_STATUSES, Checkpoint, CheckpointWrite, Run, Thread
from ..selectors import has_superseded_checkpoint, superseded_checkpoints, without_active_run
from .checkpoints import delete_checkpoints
from .deletion import delete_threads

STRATEGIES = ("delete", "keep_latest")
MAX_IDS = 1000


def prune_threads(*, user=None, thread_ids: list, strategy: str = "delete") -> int:
    """Prune these threads; returns how many were pruned.

    With a `user` (the API), only threads the user may write count: unknown,
    another account's, read-only (viewer) and duplicate ids are ignored. Without
    one (a trusted caller), every existing thread given counts.
    """
    validate_strategy(strategy)
    if not isinstance(thread_ids, (list, tuple, set, frozenset)):
        raise Invalid("thread_ids must be a list of thread ids.", errors={"thread_ids": ["Must be a list."]})
    if len(thread_ids) > MAX_IDS:
        raise Invalid(f"At most {MAX_IDS} thread ids per call.", errors={"thread_ids": [f"At most {MAX_IDS}."]})
    ids = {parse_uuid(t, name="thread_ids") for t in thread_ids}
    if user is not None and ids:
        may_write = Q(account_id__in=writable_account_ids_for(user)) | Q(created_by_id=user.pk)
        ids = set(Thread.objects.filter(may_write, pk__in=ids).values_list("pk", flat=True))
    if not ids:
        return 0
    return prune_batch(thread_ids=ids, strategy=strategy)


def prune_batch(*, thread_ids: Iterable, strategy: str) -> int:
    """One batch in one transaction (each strategy's service is atomic), with its
    receipt of kind `prune_delete` or `prune_keep_latest`."""
    validate_strategy(strategy)
    with timed_prune_batch(strategy):
        if strategy == "delete":
            with receipts.labelled(DeletionKind.PRUNE_DELETE):
                return delete_threads(thread_ids=thread_ids)
        return keep_latest_checkpoints(thread_ids=thread_ids)


def validate_strategy(strategy) -> None:
    if strategy not in STRATEGIES:
        raise Invalid(f"Unknown strategy '{strategy}': use delete or keep_latest.",
                      errors={"strategy": ["Must be delete or keep_latest."]})


@transaction.atomic
def keep_latest_checkpoints(*, thread_ids: Iterable) -> int:
    """Keep only the newest checkpoint per (thread, namespace). On PostgreSQL two
    round trips whatever the batch (`lock_and_prune`, then the receipt):

    1. lock the threads (`FOR NO KEY UPDATE`, as every write on a thread does first),
       so no run can start and no checkpoint be written on them until commit;
    2. then, in a second statement of the same execute, whose snapshot is taken once
       the locks are held (so it sees every run committed before them): find the
       newest checkpoint per (thread, namespace) of the threads without an active
       run, and of those with something older, delete every other checkpoint and
       write, make the kept ones roots, and count what went per thread for the
       receipt;
    3. write the receipt (one INSERT).

    The deletes and the update are data-modifying CTEs (all run to completion); the
    count per thread comes from the namespaces' sizes, so no deleted row is returned.
    On SQLite, which has no row locks (its transactions take the database's write
    lock at BEGIN), step 1 is skipped and step 2 is five statements.
    """
    ids = {parse_uuid(t, name="thread_ids") for t in thread_ids}
    if not ids:
        return 0
    if connection.vendor == "postgresql":
        deleted = lock_and_prune(ids)
    else:
        deleted = prune_locked_step_by_step(ids)
    if not deleted:
        return 0
    record_keep_latest(deleted)
    return len(deleted)


def record_keep_latest(deleted: dict) -> None:
    """The receipt of a keep_latest batch: `deleted` is {thread id: (account id,
    checkpoints removed)}."""
    tallies = {}
    for thread_id, (account_id, checkpoints) in deleted.items():
        tally = tallies.setdefault(account_id, receipts.Tally())
        tally.root_ids.append(thread_id)
        tally.checkpoints += checkpoints
    receipts.record(DeletionKind.PRUNE_KEEP_LATEST, tallies)


def lock_and_prune(thread_ids: Iterable) -> dict:
    """Lock these threads, then keep_latest on them: two PostgreSQL statements sent in
    one execute; returns {thread id: (account id, checkpoints deleted)} of the threads
    pruned.

    The lock is an `= ANY(array)` lookup in id order (a `pk__in` list of 1,000
    parameters cost twice the time). `newest` is the highest id per (thread,
    namespace) of the threads without an active run (an index probe on
    `run_thread_status` per thread, then index-only on `checkpoint_latest`), with the
    size of each namespace; `pruned` those threads with an older checkpoint in some
    namespace, and how many go. Every checkpoint and write of a pruned thread that is
    not a newest one is deleted: an anti-join against the kept ids, each table read
    through its `thread_id` index, with no join between checkpoints and writes (a
    write carries its thread). The kept checkpoints are made roots by primary key.
    All parts read the second statement's snapshot, taken after the locks."""
    params = {"ids": [str(t) for t in thread_ids], "active": [str(s) for s in ACTIVE_RUN_STATUSES]}
    with connection.cursor() as cursor:
        cursor.execute(keep_latest_sql(), params)
        cursor.nextset()
        rows = cursor.fetchall()
    to_uuid = Thread._meta.pk.to_python
    return {to_uuid(thread_id): (to_uuid(account_id), int(n)) for thread_id, account_id, n in rows}


@cache
def keep_latest_sql() -> str:
    """The two statements of `lock_and_prune` (parameters: `ids`, the thread ids, and
    `active`, the active run statuses): the lock, then the prune."""
    q = connection.ops.quote_name
    threads, runs, checkpoints, writes = (q(m._meta.db_table) for m in (Thread, Run, Checkpoint, CheckpointWrite))
    return f"""
        SELECT id FROM {threads} WHERE id = ANY(%(ids)s::uuid[]) ORDER BY id FOR NO KEY UPDATE;
        WITH newest AS MATERIALIZED (
            SELECT c.thread_id, max(c.id) AS id, count(*) AS n FROM {checkpoints} c
            WHERE c.thread_id = ANY(ARRAY(
                SELECT t.id FROM unnest(%(ids)s::uuid[]) AS t(id) WHERE NOT EXISTS (
                    SELECT 1 FROM {runs} r WHERE r.thread_id = t.id AND r.status = ANY(%(active)s))))
            GROUP BY c.thread_id, c.checkpoint_ns
        ),
        pruned AS MATERIALIZED (
            SELECT thread_id, sum(n - 1) AS n FROM newest GROUP BY thread_id HAVING max(n) > 1
        ),
        kept AS MATERIALIZED (SELECT id FROM newest WHERE thread_id IN (SELECT thread_id FROM pruned)),
        gone_writes AS (
            DELETE FROM {writes} w WHERE w.thread_id = ANY(ARRAY(SELECT thread_id FROM pruned))
            AND NOT EXISTS (SELECT 1 FROM kept WHERE kept.id = w.checkpoint_id)
        ),
        gone AS (
            DELETE FROM {checkpoints} c WHERE c.thread_id = ANY(ARRAY(SELECT thread_id FROM pruned))
            AND NOT EXISTS (SELECT 1 FROM kept WHERE kept.id = c.id)
        ),
        roots AS (
            UPDATE {checkpoints} SET parent_checkpoint_id = NULL
            WHERE id IN (SELECT id FROM kept) AND parent_checkpoint_id IS NOT NULL
        )
        SELECT pruned.thread_id, t.account_id, pruned.n FROM pruned JOIN {threads} t ON t.id = pruned.thread_id
    """


def prune_locked_step_by_step(thread_ids) -> dict:
    """`lock_and_prune` elsewhere (SQLite, which has no row locks): the threads with
    something to prune and no active run, their superseded checkpoints with their
    writes (`delete_checkpoints`), then the kept ones made roots."""
    prunable = without_active_run(Thread.objects.filter(has_superseded_checkpoint(), pk__in=thread_ids))
    account_of = dict(prunable.values_list("pk", "account_id"))
    pruned = list(account_of)
    if not pruned:
        return {}
    deleted = delete_checkpoints(superseded_checkpoints(thread_ids=pruned), thread_ids=pruned)
    Checkpoint.objects.filter(thread_id__in=pruned, parent_checkpoint_id__isnull=False).update(
        parent_checkpoint_id=None)
    return {thread_id: (account_id, deleted.get(thread_id, 0)) for thread_id, account_id in account_of.items()}
