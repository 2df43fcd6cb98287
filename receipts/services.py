"""Writing deletion receipts, and the outside cleanup they carry.

Recording. A destructive service reports what it removed with `record(kind,
tallies)` inside its transaction; `tallies` are per account (`Tally`: counts, the
ids asked for, and what must still go outside the database). With no operation
open, `record` writes the receipts at once (one INSERT, plus one for sandbox links);
inside `operation(...)` the tallies of nested services are merged and written once
when the operation ends, still inside the transaction. `labelled(kind)` names the
operation for services called from a bigger one (a prune calling the thread
deletion). Who and from where come from `receipts.context`.

Cleanup. A receipt with embeddings or sandboxes to remove is `pending`. One task per
operation (`receipts.tasks.clean_up_deletions`, after commit) removes the embeddings
and deletes the sandboxes at their provider, then marks the receipt `complete`, or
keeps it `pending` with the error and is retried with backoff. The reconciler
(`reconcile_deletions`, beat) takes every receipt still pending — broker down,
worker lost, provider outage — so nothing depends on a broker message arriving.
"""

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from datetime import timedelta
from functools import cache
from typing import NamedTuple

from django.conf import settings
from django.db import connection, router, transaction
from django.db.models import Q
from django.utils import timezone

from config.observability import count_deleted, record_destructive
from config.tasks import send_after_commit

from .context import current_origin
from .models import COUNT_FIELDS, CleanupState, DeletionReceipt, ReceiptSandbox

logger = logging.getLogger(__name__)


class CleanupIncomplete(Exception):
    """Some outside cleanup of these receipts failed; they stay pending (retry)."""


@dataclass
class Tally:
    """What one operation removed in one account."""

    root_ids: list = field(default_factory=list)
    threads: int = 0
    messages: int = 0
    runs: int = 0
    checkpoints: int = 0
    projects: int = 0
    sandboxes: int = 0
    embeddings: int = 0
    agents: int = 0
    threads_closed: int = 0
    embedding_thread_ids: list = field(default_factory=list)
    embedding_project_ids: list = field(default_factory=list)
    sandbox_ids: list = field(default_factory=list)

    def merge(self, other: "Tally") -> None:
        for f in fields(self):
            value = getattr(other, f.name)
            setattr(self, f.name, getattr(self, f.name) + value)

    @property
    def needs_cleanup(self) -> bool:
        return bool(self.embedding_thread_ids or self.embedding_project_ids or self.sandbox_ids)


class _Operation:
    def __init__(self, kind: str, root_ids: Iterable | None = None):
        self.kind = kind
        self.root_ids = None if root_ids is None else [str(r) for r in root_ids]
        self.tallies: dict = defaultdict(Tally)

    def add(self, tallies: dict) -> None:
        for account_id, tally in tallies.items():
            self.tallies[account_id].merge(tally)

    def new_receipt(self, account_id, tally: Tally, *, origin=None, operation_id=None) -> DeletionReceipt:
        """The receipt of this operation in one account (not saved)."""
        origin = origin or current_origin()
        actor_id, actor = origin.actor()
        receipt = DeletionReceipt(
            operation_id=operation_id or origin.operation_id or uuid.uuid4(), kind=_label.get() or self.kind,
            source=origin.source, actor_id=actor_id, actor=actor, account_id=account_id,
            root_ids=self.root_ids if self.root_ids is not None else _unique(tally.root_ids),
            **{name: getattr(tally, name) for name in COUNT_FIELDS},
            embedding_thread_ids=_unique(tally.embedding_thread_ids),
            embedding_project_ids=_unique(tally.embedding_project_ids),
            cleanup_state=CleanupState.PENDING if tally.needs_cleanup else CleanupState.COMPLETE,
            completed_at=None if tally.needs_cleanup else timezone.now(),
        )
        receipt.sandboxes = max(receipt.sandboxes, len(set(tally.sandbox_ids)))
        return receipt

    def write(self) -> list[DeletionReceipt]:
        if not self.tallies:
            return []
        origin = current_origin()
        operation_id = origin.operation_id or uuid.uuid4()
        receipts, links = [], []
        for account_id, tally in self.tallies.items():
            receipt = self.new_receipt(account_id, tally, origin=origin, operation_id=operation_id)
            receipts.append(receipt)
            links += [ReceiptSandbox(receipt=receipt, sandbox_id=s) for s in set(tally.sandbox_ids)]
        DeletionReceipt.objects.bulk_create(receipts)
        written(receipts)
        if links:
            ReceiptSandbox.objects.bulk_create(links)
        pending = [str(r.pk) for r in receipts if r.cleanup_state == CleanupState.PENDING]
        if pending:
            schedule_cleanup(receipt_ids=pending)
        return receipts


def written(receipts: list[DeletionReceipt]) -> None:
    """What follows the INSERT of an operation's receipts: its metrics and log line,
    after commit."""
    record_destructive(receipts[0].kind, {name: sum(getattr(r, name) for r in receipts) for name in COUNT_FIELDS})


class InlineReceipt(NamedTuple):
    """A receipt written by the deleting statement itself (see `inline_receipt`)."""

    cte: str  # `, receipt AS (INSERT INTO ... SELECT ... FROM <source>)`: to follow that statement's CTEs
    params: dict
    receipt: DeletionReceipt


def inline_receipt(kind: str, tally: Tally, *, from_sql: dict, source: str) -> InlineReceipt | None:
    """The receipt of a one-account deletion whose counts only its own statement knows,
    as an INSERT for that statement to run as a data-modifying CTE (`cte`, to append
    to its `WITH` list): one round trip for
    the delete and its receipt, instead of two. `from_sql` gives those columns as SQL
    expressions of the statement (`{"checkpoints": "(SELECT COUNT(*) FROM own)"}`); the
    others are parameters, as `record` would write them from `tally`; one row per row
    of `source` (what follows `FROM`: no row, no receipt). Once the statement ran, the
    caller passes it to `record` with the tallies the statement wrote.

    None — the caller then calls `record` — inside an open operation (it writes one
    receipt for all its parts) and for sandboxes (their links are rows of their own)."""
    if _operation.get() is not None or tally.sandbox_ids:
        return None
    if not connection.in_atomic_block:
        logger.warning("A %s was recorded outside a transaction.", kind)
    receipt = _Operation(kind).new_receipt(None, tally)
    cte, parameters = _inline_insert(tuple(from_sql.items()), source)
    params = {name: f.get_db_prep_save(f.pre_save(receipt, True), connection) for name, f in parameters}
    return InlineReceipt(cte, params, receipt)


@cache
def _inline_insert(from_sql: tuple, source: str) -> tuple[str, tuple]:
    """`inline_receipt`'s CTE (built once per statement) and its parameters, as
    (name, field)."""
    q = connection.ops.quote_name
    expressions = dict(from_sql)
    columns, values, parameters = [], [], []
    for i, f in enumerate(DeletionReceipt._meta.local_concrete_fields):
        columns.append(q(f.column))
        if f.column in expressions:
            values.append(expressions[f.column])
        else:
            parameters.append((f"receipt_{i}", f))
            values.append(f"CAST(%(receipt_{i})s AS {f.db_type(connection)})")  # typed when prepared
    cte = (f",\n        receipt AS (INSERT INTO {q(DeletionReceipt._meta.db_table)} ({', '.join(columns)}) "
           f"SELECT {', '.join(values)} FROM {source})")
    return cte, tuple(parameters)


def _inline_written(inline: InlineReceipt, *, account_id, tally: Tally) -> DeletionReceipt:
    """After the statement wrote `inline`'s receipt, with what it counted (`account_id`,
    `tally`: the values of its `from_sql`): what follows any receipt's INSERT — the
    metrics and log line (`written`) and the outside cleanup's task."""
    receipt = inline.receipt
    receipt.account_id = account_id
    for name in COUNT_FIELDS:
        setattr(receipt, name, getattr(tally, name))
    receipt.embedding_thread_ids = _unique(tally.embedding_thread_ids)
    receipt.embedding_project_ids = _unique(tally.embedding_project_ids)
    written([receipt])
    if receipt.cleanup_state == CleanupState.PENDING:
        schedule_cleanup(receipt_ids=[str(receipt.pk)])
    return receipt


def _unique(ids: Iterable) -> list[str]:
    return list(dict.fromkeys(str(i) for i in ids))


_operation: ContextVar[_Operation | None] = ContextVar("deletion_operation", default=None)
_label: ContextVar[str | None] = ContextVar("deletion_label", default=None)


@contextmanager
def operation(kind: str, *, root_ids: Iterable | None = None):
    """One receipt (per account) for everything recorded inside, written when the
    block ends; call it inside the operation's transaction. Nested in another
    operation, it is part of that one."""
    if _operation.get() is not None:
        yield _operation.get()
        return
    if not connection.in_atomic_block:  # a caller's bug: the receipt then commits on its own
        logger.warning("A %s was recorded outside a transaction.", kind)
    op = _Operation(kind, root_ids)
    token = _operation.set(op)
    try:
        yield op
    finally:
        _operation.reset(token)
    op.write()


@contextmanager
def labelled(kind: str):
    """Receipts written inside are of this kind (the outermost label wins)."""
    token = _label.set(_label.get() or kind)
    try:
        yield
    finally:
        _label.reset(token)


def record(kind: str, tallies: dict, *, inline: InlineReceipt | None = None) -> None:
    """Report what a service removed, per account {account_id: Tally}; inside its
    transaction. Adds to the open operation, or writes the receipts now — or, with
    `inline` (see `inline_receipt`; then one account), completes the receipt the
    deleting statement wrote."""
    if not tallies:
        return
    if inline is not None:
        ((account_id, tally),) = tallies.items()
        _inline_written(inline, account_id=account_id, tally=tally)
        return
    op = _operation.get()
    if op is not None:
        op.add(tallies)
        return
    with operation(kind) as op:
        op.add(tallies)


# --- The outside cleanup ------------------------------------------------------------


def schedule_cleanup(*, receipt_ids: list[str]) -> None:
    """One task, after commit, for all of an operation's outside cleanup. `robust`:
    with the broker down the receipts stay pending and the reconciler takes them."""
    from .tasks import clean_up_deletions

    send_after_commit(clean_up_deletions, receipt_ids=receipt_ids)


def clean_up(*, receipt_ids: Iterable) -> dict:
    """Remove the embeddings and delete the sandboxes of these pending receipts, then
    mark each `complete` or keep it `pending` with the error. Idempotent.

    Returns {"complete": n, "pending": n}; raises CleanupIncomplete after recording
    the attempt when something failed (the task retries).
    """
    from sandboxes.providers import ProviderError
    from sandboxes.services import delete_sandbox_at_provider, one_pass
    from threads.vectorstore import remove_embeddings

    receipts = list(DeletionReceipt.objects.filter(pk__in=list(receipt_ids), cleanup_state=CleanupState.PENDING))
    errors = {}
    with one_pass():  # a provider that times out is waited for once, not once per sandbox
        for receipt in receipts:
            now = timezone.now()
            problems = []
            embeddings = receipt.embedding_thread_ids or receipt.embedding_project_ids
            if receipt.embeddings_removed_at is None and embeddings:
                try:
                    removed = remove_embeddings(
                        thread_ids=receipt.embedding_thread_ids, project_ids=receipt.embedding_project_ids
                    )
                except Exception as exc:  # the vector store is outside: any failure is retried
                    problems.append(f"embeddings: {exc}")
                else:
                    DeletionReceipt.objects.filter(pk=receipt.pk).update(
                        embeddings=receipt.embeddings + removed, embeddings_removed_at=now,
                        embedding_thread_ids=[], embedding_project_ids=[],
                    )
                    count_deleted({"embeddings": removed})
            for sandbox_id in receipt.sandbox_links.values_list("sandbox_id", flat=True):
                try:
                    delete_sandbox_at_provider(sandbox_id=sandbox_id)
                except ProviderError as exc:
                    problems.append(f"sandbox {sandbox_id}: {exc}")
            DeletionReceipt.objects.filter(pk=receipt.pk).update(
                cleanup_attempts=receipt.cleanup_attempts + 1, last_attempt_at=now
            )
            if problems:
                errors[receipt.pk] = "; ".join(problems)
    handled = [r.pk for r in receipts]
    refresh_cleanup_state(receipt_ids=handled, errors=errors)  # (a sandbox confirmation may have done it)
    states = {"complete": 0, "pending": 0}
    for state in DeletionReceipt.objects.filter(pk__in=handled).values_list("cleanup_state", flat=True):
        states[state] += 1
    if errors:
        logger.warning("Deletion cleanup incomplete for receipts %s: %s", list(errors), list(errors.values())[:3])
        raise CleanupIncomplete("; ".join(errors.values())[:2000])
    return states


def refresh_cleanup_state(*, receipt_ids: Iterable, errors: dict | None = None) -> None:
    """`complete` for the receipts whose embeddings are removed and whose sandboxes
    the provider confirmed deleted; the others stay `pending` with the error."""
    from sandboxes.models import Sandbox, SandboxState

    errors = errors or {}
    receipts = list(
        DeletionReceipt.objects.filter(pk__in=list(receipt_ids), cleanup_state=CleanupState.PENDING)
        .only("id", "embeddings_removed_at", "embedding_thread_ids", "embedding_project_ids")
    )
    links = ReceiptSandbox.objects.filter(receipt_id__in=[r.pk for r in receipts])
    waiting = defaultdict(list)
    undeleted = Sandbox.objects.filter(id__in=links.values("sandbox_id")).exclude(state=SandboxState.DELETED)
    undeleted = dict(undeleted.values_list("id", "last_error"))
    for receipt_id, sandbox_id in links.values_list("receipt_id", "sandbox_id"):
        if sandbox_id in undeleted:
            waiting[receipt_id].append((sandbox_id, undeleted[sandbox_id]))
    now = timezone.now()
    for receipt in receipts:
        embeddings_left = receipt.embeddings_removed_at is None and (
            receipt.embedding_thread_ids or receipt.embedding_project_ids
        )
        if not embeddings_left and not waiting[receipt.pk]:
            DeletionReceipt.objects.filter(pk=receipt.pk, cleanup_state=CleanupState.PENDING).update(
                cleanup_state=CleanupState.COMPLETE, completed_at=now, cleanup_error=""
            )
            continue
        error = errors.get(receipt.pk) or "; ".join(
            f"sandbox {sid}: {err or 'waiting for the provider'}" for sid, err in waiting[receipt.pk]
        ) or "embeddings not removed yet"
        DeletionReceipt.objects.filter(pk=receipt.pk).update(cleanup_error=error[:2000])


def on_sandboxes_deleted(*, sandbox_ids: Iterable) -> None:
    """A sandbox confirmed deleted (by any path): its receipts may be complete now."""
    ids = ReceiptSandbox.objects.filter(
        sandbox_id__in=list(sandbox_ids), receipt__cleanup_state=CleanupState.PENDING
    ).values_list("receipt_id", flat=True)
    ids = list(ids)
    if ids:
        refresh_cleanup_state(receipt_ids=ids)


def reconcile_deletions(*, min_age_seconds: float | None = None, limit: int | None = 500, progress=None) -> dict:
    """Run the cleanup of every receipt still pending whose last attempt (or, never
    attempted, whose creation) is older than `min_age_seconds` (default
    `DELETION_RECONCILE_MIN_AGE`): the `limit` oldest, or all (`limit=None`, with
    `progress(totals)` after each page of 500). Returns {"complete": n, "pending": n}."""
    from sandboxes.services import due_id_pages, one_pass, reconcile_cutoff

    cutoff = reconcile_cutoff(min_age_seconds, default=settings.DELETION_RECONCILE_MIN_AGE)
    due = Q(last_attempt_at__lte=cutoff) | Q(last_attempt_at__isnull=True, created_at__lte=cutoff)
    due = DeletionReceipt.objects.filter(due, cleanup_state=CleanupState.PENDING)
    totals = {"complete": 0, "pending": 0}
    with one_pass():  # a provider found unreachable is not waited for again in this run
        for ids in due_id_pages(due, order_by="created_at", limit=limit):
            for receipt_id in ids:
                try:
                    states = clean_up(receipt_ids=[receipt_id])
                except CleanupIncomplete:
                    states = {"complete": 0, "pending": 1}
                for key in totals:
                    totals[key] += states[key]
            if progress is not None:
                progress(dict(totals))
    return totals


def pending_receipts_count() -> int:
    """How many receipts wait for their outside cleanup (due or not)."""
    return DeletionReceipt.objects.filter(cleanup_state=CleanupState.PENDING).count()


def purgeable_receipts(*, older_than_days: int | None = None):
    """Receipts past the retention whose cleanup is complete."""
    from config.errors import Invalid

    if older_than_days is None:
        older_than_days = settings.DELETION_RECEIPT_RETENTION_DAYS
    if older_than_days < 0:
        raise Invalid("--older-than-days must be 0 or more.")
    try:
        cutoff = timezone.now() - timedelta(days=older_than_days)
    except OverflowError:
        raise Invalid(f"--older-than-days {older_than_days} reaches back before year 1: give fewer days.")
    return DeletionReceipt.objects.filter(created_at__lt=cutoff, cleanup_state=CleanupState.COMPLETE)


def purge_receipts(*, older_than_days: int | None = None, batch_size: int = 5000, progress=None) -> int:
    """Delete receipts older than the retention (`DELETION_RECEIPT_RETENTION_DAYS`),
    in batches; a receipt whose cleanup is still pending is kept. Returns how many."""
    old = purgeable_receipts(older_than_days=older_than_days)
    purged = 0
    while True:
        with transaction.atomic():
            ids = list(old.order_by("created_at").values_list("id", flat=True)[:batch_size])
            if not ids:
                return purged
            DeletionReceipt.objects.filter(pk__in=ids)._raw_delete(router.db_for_write(DeletionReceipt))
        purged += len(ids)
        if progress is not None:
            progress(purged)
