"""Reads for receipts: what a deletion is about to remove (counted set-based, in
one query whatever the number of threads), and the receipts an account may read."""

from collections.abc import Iterable

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from .models import DeletionReceipt


def _count_per_thread(model) -> Subquery:
    rows = model.objects.filter(thread_id=OuterRef("pk")).order_by().values("thread_id")
    return Coalesce(Subquery(rows.annotate(n=Count("*")).values("n")), Value(0), output_field=IntegerField())


def thread_contents(threads: QuerySet) -> dict:
    """{account_id: Tally(threads, messages, runs, checkpoints)} of these threads
    (give every thread that goes: sub-threads are not added). One query."""
    from threads.models import Checkpoint, Run

    from .services import Tally

    rows = (
        threads.order_by().values("account_id")
        .annotate(
            n_threads=Count("pk"),
            n_messages=Sum("last_message_seq"),  # a thread's messages (see `Thread.last_message_seq`)
            n_runs=Sum(_count_per_thread(Run)),
            n_checkpoints=Sum(_count_per_thread(Checkpoint)),
        )
    )
    return {
        row["account_id"]: Tally(
            threads=row["n_threads"], messages=row["n_messages"] or 0, runs=row["n_runs"] or 0,
            checkpoints=row["n_checkpoints"] or 0,
        )
        for row in rows
    }


def receipts_of(*, account_id, kind: Iterable = (), source: Iterable = (), cleanup_state: str | None = None,
                since=None, until=None) -> QuerySet:
    """An account's receipts, newest first, filtered."""
    rows = DeletionReceipt.objects.filter(account_id=account_id)
    if kind:
        rows = rows.filter(kind__in=list(kind))
    if source:
        rows = rows.filter(source__in=list(source))
    if cleanup_state:
        rows = rows.filter(cleanup_state=cleanup_state)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    return rows.order_by("-created_at", "-id")
