"""Thin Celery tasks for receipts: each calls a service function."""

from celery import shared_task
from django.conf import settings

from . import services


@shared_task(
    autoretry_for=(services.CleanupIncomplete,),
    max_retries=settings.DELETION_CLEANUP_MAX_RETRIES,
    retry_backoff=settings.SANDBOX_RETRY_BACKOFF,
    retry_backoff_max=settings.SANDBOX_RETRY_BACKOFF_MAX,
    retry_jitter=False,
)
def clean_up_deletions(*, receipt_ids: list[str]) -> dict:
    """All the outside cleanup of one deletion (embeddings, sandboxes); retried with
    backoff, then left to the reconciler."""
    return services.clean_up(receipt_ids=receipt_ids)


@shared_task
def reconcile_deletions() -> dict:
    """Periodic (beat): finish every cleanup still pending."""
    return services.reconcile_deletions()


@shared_task
def purge_receipts() -> int:
    """Periodic (beat): delete receipts older than the retention."""
    return services.purge_receipts()
