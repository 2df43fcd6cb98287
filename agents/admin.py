"""Agents for staff: versions and triggers inline, export, and deletion through
`agents.services.delete_agent` after a confirmation page (above the job threshold in
threads, as a background job). A default or system agent is refused with the reason,
on its page, on its delete page and in the bulk action."""

import json

from django.contrib import admin, messages
from django.http import HttpResponse

from config.admin_base import ReadMostlyAdmin, ServiceDeletionAdmin, ViewOnlyAdmin, plural
from jobs.models import JobKind

from . import services
from .models import Agent, AgentTrigger, AgentVersion
from .selectors import agent_deletion_impact, deletion_refusal


class VersionInline(admin.TabularInline):
    model = AgentVersion
    extra = 0
    fields = ["number", "model", "system_prompt", "tools", "mcps", "created_at"]
    readonly_fields = fields
    can_delete = False
    verbose_name = "version"

    def has_add_permission(self, request, obj=None):
        return False


class TriggerInline(admin.TabularInline):
    model = AgentTrigger
    extra = 0
    fields = ["kind", "cron", "timezone", "is_active", "next_fire_at", "last_fired_at", "fire_count"]
    readonly_fields = fields
    can_delete = False
    verbose_name = "trigger"

    def has_add_permission(self, request, obj=None):
        return False


def agent_rows(impact: dict) -> list:
    return [
        ("agents", "Agents deleted", impact["agents"]),
        ("refused", "Agents refused (protected)", len(impact["refused"])),
        ("versions", "Versions deleted", impact["versions"]),
        ("triggers", "Triggers deleted (schedules stopped, webhooks revoked)", impact["triggers"]),
        ("threads_closed", "Open threads closed (active runs interrupted)", impact["threads_closed"]),
        ("threads_kept", "Threads kept (history)", impact["threads_kept"]),
        ("runs_kept", "Runs kept", impact["runs_kept"]),
        ("messages_kept", "Messages kept", impact["messages_kept"]),
    ]


@admin.register(Agent)
class AgentAdmin(ServiceDeletionAdmin, ReadMostlyAdmin):
    list_display = ["name", "id", "account", "is_default", "protected", "current_version", "created_at"]
    list_filter = ["is_default"]
    search_fields = ["name", "=id"]
    list_select_related = ["account"]
    inlines = [VersionInline, TriggerInline]
    actions = ["delete_agents", "export_agents"]
    job_kind = JobKind.DELETE_AGENTS
    deletion_intro = ("The agents will be deleted with their versions and triggers. Their open threads are closed; "
                      "their threads, runs and messages stay, without an agent. This cannot be undone.")
    deletion_intro_one = ("The agent will be deleted with its versions and triggers. Its open threads are closed; "
                          "its threads, runs and messages stay, without an agent. This cannot be undone.")
    job_note = ("the deletion runs in the background, the threads closed and released in batches, then the agents "
                "deleted; you can follow it and cancel it on its page.")

    @admin.display(boolean=True, description="protected")
    def protected(self, obj):
        return obj.is_default or obj.is_system

    @admin.display(description="protection")
    def protection(self, obj):
        return deletion_refusal(obj) or "None: this agent can be deleted (its history stays)."

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "protection"] if obj is not None else fields

    def has_add_permission(self, request):
        return False  # agents are created through the API (versions, limits, caches)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and deletion_refusal(obj):
            return False  # no delete button for a default or system agent: the page says why
        return super().has_delete_permission(request, obj)

    def deletion_impact(self, queryset):
        return agent_deletion_impact(agents=queryset)

    def deletion_rows(self, impact):
        return agent_rows(impact)

    def refusals(self, impact):
        return impact["refused"]

    def job_threads(self, impact):
        return impact["threads_kept"]

    def delete_one(self, obj):
        services.delete_agent(agent=obj)

    def deleted_message(self, deleted, threads, obj=None):
        if obj is not None:
            return f"Agent “{obj.name}” deleted; its threads, runs and messages stay."
        return f"{plural(deleted, 'agent')} deleted; their threads, runs and messages stay."

    @admin.action(description="Delete selected agents (history kept)", permissions=["delete"])
    def delete_agents(self, request, queryset):
        return self.run_deletion(request, queryset, action="delete_agents")

    @admin.action(description="Export selected agents (JSON)")
    def export_agents(self, request, queryset):
        agents = list(queryset.prefetch_related("versions", "triggers"))
        gone = self.already_deleted(request, len(agents))
        if gone:  # shown on the next page; the file has the others
            self.message_user(request, f"{plural(gone, 'selected agent')} not exported: already deleted.",
                              messages.WARNING)
        if not agents:
            return None  # back to the list, with that message
        documents = [services.export_agent(agent) for agent in agents]
        body = documents[0] if len(documents) == 1 else documents
        name = f"agent-{agents[0].pk}.json" if len(documents) == 1 else "agents.json"
        response = HttpResponse(json.dumps(body, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


@admin.register(AgentVersion)
class AgentVersionAdmin(ViewOnlyAdmin):
    list_display = ["__str__", "agent", "number", "model", "created_at"]
    list_select_related = ["agent"]


@admin.register(AgentTrigger)
class AgentTriggerAdmin(ViewOnlyAdmin):
    list_display = ["agent", "kind", "cron", "is_active", "next_fire_at"]
    list_filter = ["kind", "is_active"]
    list_select_related = ["agent"]
