"""Thin Celery tasks for background jobs."""

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def run_job(job_id: str) -> str | None:
    job = services.run_job(job_id=job_id)
    return job.state if job is not None else None


@shared_task
def requeue_stalled_jobs() -> int:
    return services.requeue_stalled_jobs()
