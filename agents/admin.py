"""Agents for staff: versions and triggers inline, export, and deletion through
`agents.services.delete_agent` — a default or system agent offers no delete."""

import json

from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.http import HttpResponse

from config.admin_base import ReadMostlyAdmin, ViewOnlyAdmin
from config.errors import ServiceError

from . import services
from .models import Agent, AgentTrigger, AgentVersion


class VersionInline(admin.TabularInline):
    model = AgentVersion
    extra = 0
    fields = ["number", "model", "system_prompt", "tools", "mcps", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class TriggerInline(admin.TabularInline):
    model = AgentTrigger
    extra = 0
    fields = ["kind", "cron", "timezone", "is_active", "next_fire_at", "last_fired_at", "fire_count"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Agent)
class AgentAdmin(ReadMostlyAdmin):
    list_display = ["name", "id", "account", "is_default", "protected", "current_version", "created_at"]
    list_filter = ["is_default"]
    search_fields = ["name", "=id"]
    list_select_related = ["account"]
    inlines = [VersionInline, TriggerInline]
    actions = ["delete_agents", "export_agents"]

    @admin.display(boolean=True, description="protected")
    def protected(self, obj):
        return obj.is_default or obj.is_system

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)  # replaced by delete_agents
        return actions

    def has_add_permission(self, request):
        return False  # agents are created through the API (versions, limits, caches)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and (obj.is_default or obj.is_system):
            return False  # no delete button for a default or system agent
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        """The change page's delete button (shown only for deletable agents)."""
        services.delete_agent(agent=obj)

    @admin.action(description="Delete selected agents (history kept)", permissions=["delete"])
    def delete_agents(self, request, queryset):
        deleted = 0
        for agent in queryset:
            try:
                services.delete_agent(agent=agent)
                deleted += 1
            except ServiceError as exc:
                self.message_user(request, f"{agent.name}: {exc.detail}", messages.WARNING)
        if deleted:
            self.message_user(request, f"{deleted} agent(s) deleted; their threads, runs and messages stay.",
                              messages.SUCCESS)

    @admin.action(description="Export selected agents (JSON)")
    def export_agents(self, request, queryset):
        documents = [services.export_agent(agent) for agent in queryset.prefetch_related("versions", "triggers")]
        body = documents[0] if len(documents) == 1 else documents
        name = f"agent-{queryset.first().pk}.json" if len(documents) == 1 else "agents.json"
        response = HttpResponse(json.dumps(body, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


@admin.register(AgentVersion)
class AgentVersionAdmin(ViewOnlyAdmin):
    list_display = ["agent", "number", "model", "created_at"]


@admin.register(AgentTrigger)
class AgentTriggerAdmin(ViewOnlyAdmin):
    list_display = ["agent", "kind", "cron", "is_active", "next_fire_at"]
    list_filter = ["kind", "is_active"]
