"""Thin Celery tasks for receipts: each calls a service function."""

import logging

from celery import shared_task
from django.conf import settings

from . import services

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=settings.DELETION_CLEANUP_MAX_RETRIES)
def clean_up_deletions(self, *, receipt_ids: list[str]) -> dict:
    """All the outside cleanup of one deletion (embeddings, sandboxes). On a worker it
    is retried with exponential backoff; in-process (eager, the embedded defaults) it
    makes one attempt so that the request never waits on a provider. Then the
    reconciler takes over."""
    try:
        return services.clean_up(receipt_ids=receipt_ids)
    except services.CleanupIncomplete as exc:
        if self.request.is_eager:
            return {"complete": 0, "pending": len(receipt_ids)}
        if self.request.retries >= self.max_retries:  # an outage, not a bug: no traceback
            logger.warning("Deletion cleanup of receipts %s given up after %d attempts; left to the reconciler: %s",
                           receipt_ids, self.request.retries + 1, exc)
            return {"complete": 0, "pending": len(receipt_ids)}
        countdown = min(settings.SANDBOX_RETRY_BACKOFF * 2 ** self.request.retries, settings.SANDBOX_RETRY_BACKOFF_MAX)
        raise self.retry(exc=exc, countdown=countdown)


@shared_task
def reconcile_deletions() -> dict:
    """Periodic (beat): finish every cleanup still pending."""
    return services.reconcile_deletions()


@shared_task
def purge_receipts() -> int:
    """Periodic (beat): delete receipts older than the retention."""
    return services.purge_receipts()
