"""Tenancy: accounts, their members, and the projects they own."""

import uuid

from django.conf import settings
from django.db import models


class Account(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    # None means the site default (settings.DEFAULT_THREAD_LIMIT / DEFAULT_AGENT_LIMIT).
    thread_limit = models.PositiveIntegerField(null=True, blank=True)
    agent_limit = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def effective_thread_limit(self) -> int:
        return self.thread_limit if self.thread_limit is not None else settings.DEFAULT_THREAD_LIMIT

    @property
    def effective_agent_limit(self) -> int:
        return self.agent_limit if self.agent_limit is not None else settings.DEFAULT_AGENT_LIMIT


class Role(models.TextChoices):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


WRITE_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})


class Membership(models.Model):
    account = models.ForeignKey(Account, on_delete=models.DB_CASCADE, related_name="memberships")
    # A soft reference: auth.User is referenced by Django's own Python-level foreign
    # keys (the admin log) and a model may not mix the two kinds. projects.signals
    # removes a deleted user's memberships.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "user"], name="one_membership_per_user_and_account"),
        ]

    def __str__(self):
        return f"{self.user} in {self.account} ({self.role})"

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES


class Project(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.DB_CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # The account's default project: where threads created without a project go
    # (created on demand; deleted with its last thread like any project).
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"], name="project_account_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=models.Q(is_default=True), name="one_default_project_per_account"
            ),
        ]

    def __str__(self):
        return self.name
