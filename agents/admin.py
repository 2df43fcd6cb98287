"""Agents for staff: versions and triggers inline, export, and deletion through
`agents.services.delete_agent` after a confirmation page (above the job threshold in
threads, as a background job). A default or system agent is refused with the reason,
on its page, on its delete page and in the bulk action."""

import json

from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse

from config.admin_base import ConfirmationMixin, ReadMostlyAdmin, ViewOnlyAdmin, plural
from config.errors import NotFound, ServiceError
from jobs.models import JobKind
from jobs.services import job_threshold

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


def background_note(threads: int) -> str:
    if threads <= job_threshold():
        return ""
    return (f"More than {plural(job_threshold(), 'thread')}: the deletion runs in the background, the threads "
            f"closed and released in batches, then the agents deleted; you can follow it and cancel it on its page.")


def agent_threads(agents) -> int:
    """The threads an agent deletion touches (closed if open, detached from it)."""
    from threads.models import Thread

    return Thread.objects.filter(agent__in=agents).count()


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
class AgentAdmin(ConfirmationMixin, ReadMostlyAdmin):
    list_display = ["name", "id", "account", "is_default", "protected", "current_version", "created_at"]
    list_filter = ["is_default"]
    search_fields = ["name", "=id"]
    list_select_related = ["account"]
    inlines = [VersionInline, TriggerInline]
    actions = ["delete_agents", "export_agents"]

    @admin.display(boolean=True, description="protected")
    def protected(self, obj):
        return obj.is_default or obj.is_system

    @admin.display(description="protection")
    def protection(self, obj):
        return deletion_refusal(obj) or "None: this agent can be deleted (its history stays)."

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "protection"] if obj is not None else fields

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)  # replaced by delete_agents
        return actions

    def has_add_permission(self, request):
        return False  # agents are created through the API (versions, limits, caches)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and deletion_refusal(obj):
            return False  # no delete button for a default or system agent: the page says why
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        services.delete_agent(agent=obj)

    def delete_view(self, request, object_id, extra_context=None):
        """A confirmation page with the numbers, then `delete_agent`; a protected
        agent's page says why it cannot go (403)."""
        agent = self.get_object(request, unquote(object_id))
        if agent is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not super().has_delete_permission(request, agent):
            raise PermissionDenied
        change_url = reverse("admin:agents_agent_change", args=[quote(agent.pk)])
        reason = deletion_refusal(agent)
        confirmed = request.method == "POST" and request.POST.get("post") == "yes"
        impact = None if confirmed and not reason else agent_deletion_impact(agents=Agent.objects.filter(pk=agent.pk))
        if reason or not confirmed:
            response = self.confirm(
                request, obj=agent, title=f"Cannot delete agent “{agent}”" if reason else f"Delete agent “{agent}”?",
                intro="This agent is protected and stays." if reason else self.intro,
                rows=agent_rows(impact), confirm_label="Yes, delete it", cancel_url=change_url,
                refused=[(str(a), r) for a, r in impact["refused"].items()], allowed=not reason,
                note="" if reason else background_note(impact["threads_kept"]),
            )
            if reason:
                response.status_code = 403
            return response
        threads = agent_threads(Agent.objects.filter(pk=agent.pk))
        if threads > job_threshold():
            return self.start_job(request, kind=JobKind.DELETE_AGENTS, targets=Agent.objects.filter(pk=agent.pk),
                                  total=threads, description=f"Delete agent “{agent.name}” ({plural(threads, 'thread')})")
        try:
            services.delete_agent(agent=agent)
        except ServiceError as exc:
            self.message_user(request, f"{agent.name}: {exc.detail}", messages.ERROR)
            return HttpResponseRedirect(change_url)
        self.message_user(request, f"Agent “{agent.name}” deleted; its threads, runs and messages stay.",
                          messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:agents_agent_changelist"))

    intro = ("The agents will be deleted with their versions and triggers. Their open threads are closed; "
             "their threads, runs and messages stay, without an agent. This cannot be undone.")

    @admin.action(description="Delete selected agents (history kept)", permissions=["delete"])
    def delete_agents(self, request, queryset):
        impact = agent_deletion_impact(agents=queryset)
        deletable = queryset.exclude(pk__in=[a.pk for a in impact["refused"]])
        if request.POST.get("post") != "yes":
            return self.confirm(
                request, action="delete_agents", title=f"Delete {plural(impact['agents'], 'agent')}?",
                intro=self.intro, rows=agent_rows(impact), confirm_label="Yes, delete them",
                named=self.named_objects(deletable, "name"), named_total=impact["agents"],
                named_label="Agents deleted", refused=[(str(a), r) for a, r in impact["refused"].items()],
                allowed=impact["agents"] > 0, note=background_note(impact["threads_kept"]),
            )
        if impact["threads_kept"] > job_threshold():
            for agent, reason in impact["refused"].items():
                self.message_user(request, f"“{agent.name}” refused: {reason}", messages.WARNING)
            return self.start_job(
                request, kind=JobKind.DELETE_AGENTS, targets=deletable, total=impact["threads_kept"],
                description=f"Delete {plural(impact['agents'], 'agent')} ({plural(impact['threads_kept'], 'thread')})",
            )
        deleted, gone = 0, 0
        for agent in queryset.order_by("name", "pk"):
            try:
                services.delete_agent(agent=agent)
                deleted += 1
            except NotFound:
                gone += 1
            except ServiceError as exc:
                self.message_user(request, f"“{agent.name}” refused: {exc.detail}", messages.WARNING)
        if deleted:
            self.message_user(request, f"{plural(deleted, 'agent')} deleted; their threads, runs and messages stay.",
                              messages.SUCCESS)
        if gone:
            self.message_user(request, f"{plural(gone, 'agent')} skipped: already deleted.", messages.WARNING)
        return None

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
    list_display = ["__str__", "agent", "number", "model", "created_at"]
    list_select_related = ["agent"]


@admin.register(AgentTrigger)
class AgentTriggerAdmin(ViewOnlyAdmin):
    list_display = ["agent", "kind", "cron", "is_active", "next_fire_at"]
    list_filter = ["kind", "is_active"]
    list_select_related = ["agent"]
