"""Background jobs: a destructive operation too big for one request (deleting,
pruning or closing thousands of threads, deleting projects, accounts or agents that
hold them), run by
a Celery worker in batches through the same services as everything else.

A job's scope is fixed when it is submitted: the ids of what was confirmed are
copied into `JobTarget` rows in one `INSERT ... SELECT`. Each batch, in one
transaction, runs the service and moves the job's cursor past the targets it
handled, so the targets after the cursor are exactly the work left: a job cancelled, or a worker that died, stops
between two batches with nothing half done, and a job sent again resumes.
"""

import uuid

from django.db import models


class JobKind(models.TextChoices):
    DELETE_THREADS = "delete_threads", "Delete threads"
    PRUNE_KEEP_LATEST = "prune_keep_latest", "Prune old checkpoints (keep latest)"
    DELETE_PROJECTS = "delete_projects", "Delete projects"
    DELETE_ACCOUNTS = "delete_accounts", "Delete accounts"
    CLOSE_THREADS = "close_threads", "Close threads"
    DELETE_AGENTS = "delete_agents", "Delete agents"


# What a job's `affected` counts, by kind (its page's label).
AFFECTED_LABELS = {
    JobKind.DELETE_THREADS: "Deleted", JobKind.PRUNE_KEEP_LATEST: "Pruned", JobKind.DELETE_PROJECTS: "Deleted",
    JobKind.DELETE_ACCOUNTS: "Deleted", JobKind.CLOSE_THREADS: "Closed",
    JobKind.DELETE_AGENTS: "Threads closed",
}


class JobState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


FINISHED_STATES = (JobState.DONE, JobState.CANCELLED, JobState.FAILED)


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32, choices=JobKind.choices)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.PENDING)
    # Where it was started from (`admin`, `command`) and by whom: a soft reference,
    # as for Thread.created_by (auth.User sits outside the database-level graph).
    source = models.CharField(max_length=16, default="admin")
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+",
        verbose_name="started by",
    )
    description = models.CharField(max_length=300)
    batch_size = models.PositiveIntegerField(default=1000)
    # Progress, in threads: `total` counted at submission, `done` processed so far;
    # `affected` is how many the service actually deleted or pruned.
    total = models.PositiveBigIntegerField(default=0)
    done = models.PositiveBigIntegerField(default=0)
    affected = models.PositiveBigIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    # The last target handled (targets are taken in object_id order): the work left
    # is every target after it.
    cursor = models.UUIDField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "-created_at"], name="job_state_created")]

    def __str__(self):
        return self.description or f"{self.get_kind_display()} {self.id}"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


class JobTarget(models.Model):
    """One object (a thread, project, account or agent id) a job still has to handle."""

    job = models.ForeignKey(Job, on_delete=models.DB_CASCADE, related_name="targets")
    object_id = models.UUIDField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "object_id"], name="one_target_per_job_and_object")]

    def __str__(self):
        return str(self.object_id)
