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

from django.db import connection, transaction
from django.db.models import Q

from config.errors import Invalid
from config.observability import timed_prune_batch
from projects.selectors import parse_uuid, writable_account_ids_for
from receipts import services as receipts
from receipts.models import DeletionKind

from ..models import Checkpoint, Thread
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
    """Keep only the newest checkpoint per (thread, namespace). Six statements
    whatever the batch:

    1. lock the threads (`FOR NO KEY UPDATE`, as every write on a thread does first),
       so no run can start and no checkpoint be written on them until commit;
    2. then, in a fresh statement that sees every run committed before the locks,
       find the threads without an active run that have something to prune;
    3. delete their superseded checkpoints with their writes, counted per thread for
       the receipt (one statement on PostgreSQL, see `delete_checkpoints`);
    4. make the checkpoints left roots;
    5. write the receipt (one INSERT).

    On SQLite, which has no row locks (its transactions take the database's write
    lock at BEGIN), step 1 is skipped and step 3 is three statements.
    """
    locked = {parse_uuid(t, name="thread_ids") for t in thread_ids}
    if connection.features.has_select_for_update:
        locked = list(
            Thread.objects.select_for_update(no_key=True, of=("self",)).filter(pk__in=locked)
            .order_by("pk").values_list("pk", flat=True)
        )
    if not locked:
        return 0
    prunable = without_active_run(Thread.objects.filter(has_superseded_checkpoint(), pk__in=locked))
    account_of = dict(prunable.values_list("pk", "account_id"))
    pruned = list(account_of)
    if not pruned:
        return 0
    deleted = delete_checkpoints(superseded_checkpoints(thread_ids=pruned), thread_ids=pruned)
    tallies = {}
    for thread_id, account_id in account_of.items():
        tally = tallies.setdefault(account_id, receipts.Tally())
        tally.root_ids.append(thread_id)
        tally.checkpoints += deleted.get(thread_id, 0)
    left = Checkpoint.objects.filter(thread_id__in=pruned, parent_checkpoint_id__isnull=False)
    left.update(parent_checkpoint_id=None)
    receipts.record(DeletionKind.PRUNE_KEEP_LATEST, tallies)
    return len(pruned)
