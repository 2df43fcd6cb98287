"""Agents, their numbered configuration versions and their triggers."""

import uuid

from django.db import models


class Agent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey("projects.Account", on_delete=models.DB_CASCADE, related_name="agents")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    is_default = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True)
    # Number of the AgentVersion that holds the current configuration.
    current_version = models.PositiveIntegerField(default=1)
    # Soft reference to auth.User: see threads.models.Thread.created_by.
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=models.Q(is_default=True), name="one_default_agent_per_account"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_system(self) -> bool:
        meta = self.metadata or {}
        return bool(meta.get("is_system") or meta.get("is_suna_default"))


class AgentVersion(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.DB_CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    system_prompt = models.TextField(blank=True, default="")
    model = models.CharField(max_length=200)
    tools = models.JSONField(default=list, blank=True)
    mcps = models.JSONField(default=list, blank=True)
    # LangGraph's view of the same agent (an assistant): the runtime it runs on
    # (blank: the site's DEFAULT_RUNTIME), its config and static context.
    graph_id = models.CharField(max_length=64, blank=True, default="")
    config = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    # The agent's metadata while this version was its current one (LangGraph's
    # assistant versions each keep theirs; `set_latest` brings it back).
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agent", "number"]
        constraints = [models.UniqueConstraint(fields=["agent", "number"], name="unique_agent_version_number")]

    def __str__(self):
        return f"{self.agent.name} v{self.number}"


class TriggerKind(models.TextChoices):
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"


class AgentTrigger(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.DB_CASCADE, related_name="triggers")
    kind = models.CharField(max_length=16, choices=TriggerKind.choices)
    cron = models.CharField(max_length=120, blank=True, default="")
    timezone = models.CharField(max_length=64, blank=True, default="UTC")
    input = models.JSONField(default=dict, blank=True)
    # The thread a webhook or schedule starts runs on (None: a new thread of `project`
    # each time). A trigger goes with its thread or its project (as LangGraph deletes a
    # thread's crons with it): left behind, it would fire into nothing, or start new
    # threads where its one thread was.
    thread = models.ForeignKey(
        "threads.Thread", null=True, blank=True, on_delete=models.DB_CASCADE, related_name="+"
    )
    project = models.ForeignKey(
        "projects.Project", null=True, blank=True, on_delete=models.DB_CASCADE, related_name="+"
    )
    # Only a hash of a webhook's secret is stored; revoking clears it.
    secret_hash = models.CharField(max_length=128, blank=True, default="")
    is_active = models.BooleanField(default=True)
    next_fire_at = models.DateTimeField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    fire_count = models.PositiveIntegerField(default=0)
    # LangGraph crons (schedules created through `/runs/crons`): the options every run
    # it starts gets (config, context, metadata, webhook, interrupt_before/after,
    # multitask_strategy, ...), the cron's own metadata, when it stops, and what
    # happens to the new thread of a thread-less cron after each run (`delete`/`keep`).
    payload = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    on_run_completed = models.CharField(max_length=16, blank=True, default="")
    # Soft reference to auth.User: see threads.models.Thread.created_by.
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["kind", "is_active", "next_fire_at"], name="trigger_due")]

    def __str__(self):
        return f"{self.kind} trigger of {self.agent_id}"
