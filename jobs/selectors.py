"""Reads on jobs."""

from django.utils import timezone

from .models import Job, JobState


def job_progress(job: Job) -> dict:
    """What the job page shows and polls: done / total, percent, rate (threads per
    second since the job started), the estimated time left, and how many deletion
    receipts the job's batches wrote so far (they carry its id as operation id)."""
    from receipts.models import DeletionReceipt

    end = job.finished_at or timezone.now()
    elapsed = (end - job.started_at).total_seconds() if job.started_at else 0.0
    total = max(job.total, job.done)
    rate = job.done / elapsed if elapsed > 0 and job.done else 0.0
    left = total - job.done
    eta = left / rate if rate and job.state == JobState.RUNNING else None
    percent = 100.0 if job.state == JobState.DONE else (100.0 * job.done / total if total else 0.0)
    return {
        "id": str(job.pk), "state": job.state, "state_label": job.get_state_display(), "finished": job.finished,
        "cancel_requested": job.cancel_requested_at is not None, "done": job.done, "total": total,
        "affected": job.affected, "batches": job.batches, "percent": round(percent, 1),
        "elapsed_seconds": round(elapsed, 1), "rate": round(rate, 1),
        "eta_seconds": round(eta, 1) if eta is not None else None, "error": job.error,
        "receipts": DeletionReceipt.objects.filter(operation_id=job.pk).count(),
    }
