"""Thin Celery tasks for threads: each calls a service function."""

import logging

from celery import shared_task

from . import vectorstore

# --- vector store (issue 3) ---------------------------------------------------


@shared_task(autoretry_for=(Exception,), max_retries=8, retry_backoff=2, retry_backoff_max=600, retry_jitter=False,
             batch_kwarg="message_ids")  # batched by config.tasks
def index_messages(*, message_ids: list[str]) -> int:
    return vectorstore.index_messages(message_ids=message_ids)


@shared_task
def reindex_pending_messages() -> int:
    """Periodic (beat): index the messages whose indexing task was lost or failed."""
    return vectorstore.reindex_pending_messages()


# --- runs (issue 4) -------------------------------------------------------------


@shared_task(acks_late=True)
def execute_run(run_id: str) -> str | None:
    """Execute a pending run through its runtime."""
    from .services.runs import execute_run as execute

    run = execute(run_id=run_id)
    return run.status if run is not None else None


@shared_task(bind=True)
def deliver_run_webhook(self, url: str, run: dict) -> int | None:
    """POST an ended run (its document) to its webhook; a failure is retried with
    exponential backoff (WEBHOOK_RETRY_BACKOFF, doubling, at most 10 minutes apart)."""
    from django.conf import settings

    from .services.webhooks import WebhookFailed, deliver_webhook

    try:
        return deliver_webhook(url=url, run=run)
    except WebhookFailed as exc:
        attempt, retries = self.request.retries, settings.WEBHOOK_MAX_RETRIES
        log = logging.getLogger("threads.webhooks")
        if attempt >= retries:
            log.error("Webhook of run %s given up after %d attempts: %s", run.get("run_id"), attempt + 1, exc)
            return None
        log.warning("Webhook of run %s failed (attempt %d of %d): %s", run.get("run_id"), attempt + 1, retries + 1,
                    exc)
        countdown = min(settings.WEBHOOK_RETRY_BACKOFF * 2**attempt, 600)
        raise self.retry(exc=exc, countdown=countdown, max_retries=retries)


# --- thread TTL (issue: prune) ------------------------------------------------------


@shared_task
def sweep_expired_threads() -> int:
    """Periodic (beat): prune threads whose time-to-live has expired."""
    from .services.ttl import sweep_expired_threads as sweep

    return sweep()


@shared_task
def requeue_pending_runs() -> int:
    """Periodic (beat): send runs left pending (broker outage, lost worker) again."""
    from .services.runs import requeue_pending_runs as requeue

    return requeue()


@shared_task
def recover_lost_runs() -> int:
    """Periodic (beat): end the runs of workers whose lease expired (killed, scaled
    down, their host gone); prune long-expired leases."""
    from .services.runs import recover_lost_runs as recover
    from .services.workers import prune_leases

    prune_leases()
    return recover()


@shared_task(acks_late=True)
def resume_run(run_id: str, approval_id: str) -> str | None:
    """Resume a run paused on an approval, once the approval was decided."""
    from .services.runs import resume_run as resume

    run = resume(run_id=run_id, approval_id=approval_id)
    return run.status if run is not None else None


# --- agent threads (issue: agent threads) --------------------------------------------


@shared_task
def expire_approvals() -> int:
    """Periodic (beat): time out approvals that waited too long."""
    from .services.lifecycle import expire_approvals as expire

    return expire()
