"""Thin Celery tasks for agents."""

from celery import shared_task


@shared_task
def fire_due_triggers() -> int:
    """Every minute (beat): start a run for each due schedule trigger."""
    from .services import fire_due_triggers as fire

    return fire()
