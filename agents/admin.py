from django.contrib import admin

from config.admin_base import ReadMostlyAdmin

from .models import Agent, AgentTrigger, AgentVersion


@admin.register(Agent)
class AgentAdmin(ReadMostlyAdmin):
    list_display = ["name", "id", "account", "is_default", "current_version", "created_at"]
    list_filter = ["is_default"]
    search_fields = ["name", "=id"]
    list_select_related = ["account"]


@admin.register(AgentVersion)
class AgentVersionAdmin(ReadMostlyAdmin):
    list_display = ["agent", "number", "model", "created_at"]


@admin.register(AgentTrigger)
class AgentTriggerAdmin(ReadMostlyAdmin):
    list_display = ["agent", "kind", "cron", "is_active", "next_fire_at"]
    list_filter = ["kind", "is_active"]
