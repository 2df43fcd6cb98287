"""Thin Celery tasks for sandboxes: each calls a service function."""

from celery import shared_task
from django.conf import settings

from . import services
from .providers import ProviderError


@shared_task
def create_sandbox(sandbox_id: str) -> None:
    services.create_sandbox_at_provider(sandbox_id=sandbox_id)


@shared_task(
    autoretry_for=(ProviderError,),
    max_retries=settings.SANDBOX_DELETE_MAX_RETRIES,
    retry_backoff=settings.SANDBOX_RETRY_BACKOFF,
    retry_backoff_max=settings.SANDBOX_RETRY_BACKOFF_MAX,
    retry_jitter=False,
)
def delete_sandbox(sandbox_id: str) -> bool:
    """Retried with exponential backoff; after the last retry the reconciler takes over."""
    return services.delete_sandbox_at_provider(sandbox_id=sandbox_id)


@shared_task
def reconcile_sandboxes() -> dict:
    created = services.reconcile_sandbox_creation()
    return {**services.reconcile_sandboxes(), "created": created}
