"""Thin Celery tasks for sandboxes: each calls a service function."""

from celery import shared_task
from django.conf import settings

from config.tasks import retry_or_leave

from . import services
from .providers import ProviderError


@shared_task
def create_sandbox(sandbox_id: str) -> None:
    services.create_sandbox_at_provider(sandbox_id=sandbox_id)


@shared_task(bind=True, max_retries=settings.SANDBOX_DELETE_MAX_RETRIES)
def delete_sandbox(self, sandbox_id: str) -> bool:
    """Retried with exponential backoff; after the last retry the reconciler takes over
    (a warning, not a task error: a provider outage is expected)."""
    try:
        return services.delete_sandbox_at_provider(sandbox_id=sandbox_id)
    except ProviderError as exc:
        if self.request.is_eager:
            return False
        retry_or_leave(self, exc, what=f"Deleting sandbox {sandbox_id}")
        return False


@shared_task
def reconcile_sandboxes() -> dict:
    created = services.reconcile_sandbox_creation()
    return {**services.reconcile_sandboxes(), "created": created}
