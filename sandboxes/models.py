"""A project's execution environment, kept at a provider outside the database."""

import uuid

from django.db import models


class SandboxState(models.TextChoices):
    CREATING = "creating"
    READY = "ready"
    PENDING_DELETION = "pending_deletion"
    DELETED = "deleted"
    ERROR = "error"


class Sandbox(models.Model):
    """The row outlives its project (set null) until the provider confirms deletion."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.OneToOneField(
        "projects.Project", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="sandbox"
    )
    account = models.ForeignKey(
        "projects.Account", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="sandboxes"
    )
    provider = models.CharField(max_length=32)
    external_id = models.CharField(max_length=255, blank=True, default="")
    state = models.CharField(max_length=32, choices=SandboxState.choices, default=SandboxState.CREATING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    deletion_requested_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "sandboxes"
        indexes = [models.Index(fields=["state", "last_attempt_at"], name="sandbox_state_attempt")]

    def __str__(self):
        return f"{self.provider}:{self.external_id or self.id} ({self.state})"
