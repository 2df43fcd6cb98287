"""Deletion receipts: one row per destructive operation (per account it touched).

A receipt references nothing by foreign key: it outlives the threads, projects,
agents, accounts and users it describes. It holds ids and counts, never content.
It is also the outbox of the deletion's outside cleanup (embeddings in the vector
store, sandboxes at their provider): `cleanup_state` stays `pending`, with the last
error, until both are confirmed gone.
"""

import uuid

from django.db import models


class DeletionKind(models.TextChoices):
    THREAD_DELETE = "thread_delete", "thread delete"
    PRUNE_DELETE = "prune_delete", "prune (delete)"
    PRUNE_KEEP_LATEST = "prune_keep_latest", "prune (keep latest)"
    RUN_DELETE = "run_delete", "run delete"
    AGENT_DELETE = "agent_delete", "agent delete"
    PROJECT_DELETE = "project_delete", "project delete"
    ACCOUNT_DELETE = "account_delete", "account delete"
    THREAD_CLOSE = "thread_close", "thread close"


class DeletionSource(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "admin"
    COMMAND = "command", "management command"
    TTL = "ttl", "TTL sweep"
    WEBHOOK = "webhook", "webhook"
    SCHEDULE = "schedule", "schedule"
    JOB = "job", "background job"
    TASK = "task", "task"
    SYSTEM = "system", "system"


class CleanupState(models.TextChoices):
    PENDING = "pending", "pending"
    COMPLETE = "complete", "complete"


COUNT_FIELDS = (
    "threads", "messages", "runs", "checkpoints", "projects", "sandboxes", "embeddings", "agents", "threads_closed",
)


class DeletionReceipt(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    operation_id = models.UUIDField(
        default=uuid.uuid4, db_index=True,
        help_text="Shared by the receipts of one operation (one per account it touched, every batch of one job).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=32, choices=DeletionKind.choices)
    source = models.CharField(max_length=16, choices=DeletionSource.choices, default=DeletionSource.SYSTEM)
    actor_id = models.BigIntegerField(null=True, blank=True, help_text="The user's id; null for the system.")
    actor = models.CharField(max_length=150, default="system", help_text="The user's name, or `system`.")
    account_id = models.UUIDField(null=True, blank=True)
    root_ids = models.JSONField(default=list, blank=True, help_text="The ids the operation was asked to remove.")

    threads = models.PositiveBigIntegerField(default=0)
    messages = models.PositiveBigIntegerField(default=0)
    runs = models.PositiveBigIntegerField(default=0)
    checkpoints = models.PositiveBigIntegerField(default=0)
    projects = models.PositiveBigIntegerField(default=0)
    sandboxes = models.PositiveBigIntegerField(default=0)
    embeddings = models.PositiveBigIntegerField(default=0, help_text="Counted when they are removed.")
    agents = models.PositiveBigIntegerField(default=0)
    threads_closed = models.PositiveBigIntegerField(default=0)

    # The outbox: what is still to be removed outside the database.
    cleanup_state = models.CharField(max_length=16, choices=CleanupState.choices, default=CleanupState.COMPLETE)
    embedding_thread_ids = models.JSONField(default=list, blank=True)
    embedding_project_ids = models.JSONField(default=list, blank=True)
    embeddings_removed_at = models.DateTimeField(null=True, blank=True)
    cleanup_attempts = models.PositiveIntegerField(default=0)
    cleanup_error = models.TextField(blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["account_id", "-created_at"], name="receipt_account_created"),
            models.Index(fields=["cleanup_state", "last_attempt_at"], name="receipt_cleanup"),
            models.Index(fields=["created_at"], name="receipt_created"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} by {self.actor} ({self.source}) at {self.created_at:%Y-%m-%d %H:%M:%S}"


class ReceiptSandbox(models.Model):
    """A sandbox a receipt waits for (the sandbox row outlives its project until the
    provider confirms; this link lets a confirmation find its receipts)."""

    receipt = models.ForeignKey(DeletionReceipt, on_delete=models.DB_CASCADE, related_name="sandbox_links")
    sandbox_id = models.UUIDField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["receipt", "sandbox_id"], name="receipt_sandbox_unique")]
