"""Thin Celery tasks for receipts: each calls a service function."""

from celery import shared_task
from django.conf import settings

from config.tasks import retry_or_leave

from . import services


@shared_task(bind=True, max_retries=settings.DELETION_CLEANUP_MAX_RETRIES, batch_kwarg="receipt_ids")
def clean_up_deletions(self, *, receipt_ids: list[str]) -> dict:
    """All the outside cleanup of these deletions (embeddings, sandboxes; one task per
    deletion, or for the deletions of a moment: `config.tasks` batches its calls). On a
    worker it is retried with exponential backoff; in-process (eager, the embedded
    defaults) it makes one attempt so that the request never waits on a provider. Then
    the reconciler takes over."""
    try:
        return services.clean_up(receipt_ids=receipt_ids)
    except services.CleanupIncomplete as exc:
        if self.request.is_eager:
            return {"complete": 0, "pending": len(receipt_ids)}
        retry_or_leave(self, exc, what=f"Deletion cleanup of receipts {receipt_ids}")
        return {"complete": 0, "pending": len(receipt_ids)}


@shared_task
def reconcile_deletions() -> dict:
    """Periodic (beat): finish every cleanup still pending."""
    return services.reconcile_deletions()


@shared_task
def purge_receipts() -> int:
    """Periodic (beat): delete receipts older than the retention."""
    return services.purge_receipts()
