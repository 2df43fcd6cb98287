"""The admin for staff: threads with their counts, and the destructive work — delete,
prune old checkpoints, close — through the same services as the API and commands.

Every confirmation page shows what will happen in numbers computed with aggregate
queries (`threads.selectors.deletion_impact`), never by listing related rows, so it
stays fast for a thread with 100,000 messages or a selection of 100,000 threads.
"""

from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.contrib.admin import helpers
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, TextField
from django.db.models.functions import Cast
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from config.admin_base import ReadMostlyAdmin, ViewOnlyAdmin
from config.errors import ServiceError
from projects.selectors import parse_uuid

from . import services
from .models import Approval, Checkpoint, Message, Run, Thread
from .selectors import deletion_impact, id_batches

BATCH = 1000


def count_of(model):
    return Subquery(
        model.objects.filter(thread=OuterRef("pk")).order_by().values("thread").annotate(n=Count("pk")).values("n"),
        output_field=IntegerField(),
    )


class AgeFilter(admin.SimpleListFilter):
    title = "last activity"
    parameter_name = "idle_for"
    DAYS = {"1d": 1, "7d": 7, "30d": 30, "90d": 90}

    def lookups(self, request, model_admin):
        return [(key, f"more than {days} days ago" if days > 1 else "more than a day ago")
                for key, days in self.DAYS.items()]

    def queryset(self, request, queryset):
        days = self.DAYS.get(self.value())
        return queryset.filter(last_activity_at__lt=timezone.now() - timedelta(days=days)) if days else queryset


@admin.register(Thread)
class ThreadAdmin(ReadMostlyAdmin):
    list_display = ["id", "title", "project", "account", "agent", "status", "message_count", "run_count",
                    "last_activity_at"]
    list_filter = ["status", ("account", admin.RelatedOnlyFieldListFilter),
                   ("project", admin.RelatedOnlyFieldListFilter), ("agent", admin.RelatedOnlyFieldListFilter), AgeFilter]
    search_fields = ["title"]
    search_help_text = "A thread id, or words of its title or metadata."
    list_select_related = ["project", "account", "agent"]
    actions = ["delete_threads", "prune_keep_latest", "close_threads"]
    raw_id_fields = ["parent_thread", "agent", "project", "account", "schedule"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(message_count=count_of(Message), run_count=count_of(Run))

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)  # replaced by delete_threads
        return actions

    def has_add_permission(self, request):
        return False  # threads are created through the API

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, obj):
        return obj.message_count or 0

    @admin.display(description="runs", ordering="run_count")
    def run_count(self, obj):
        return obj.run_count or 0

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=parse_uuid(term)), False
        except ServiceError:
            pass
        return queryset.annotate(metadata_text=Cast("metadata", TextField())).filter(
            Q(title__icontains=term) | Q(metadata_text__icontains=term)
        ), False

    # --- confirmation pages --------------------------------------------------------

    def confirm(self, request, queryset, *, action, title, intro, impact, confirm_label, notes=()):
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": title, "intro": intro,
            "impact": impact, "notes": notes, "confirm_label": confirm_label, "action": action,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across") == "1",
            "cancel_url": request.get_full_path(),
        }
        return TemplateResponse(request, "admin/confirm_bulk_action.html", context)

    @staticmethod
    def impact_rows(impact: dict) -> list:
        return [
            ("Threads (with their sub-threads)", impact["threads"]), ("Messages", impact["messages"]),
            ("Runs", impact["runs"]), ("Checkpoints", impact["checkpoints"]),
            ("Projects left empty, deleted with them", impact["projects"]),
            ("Sandboxes deleted with those projects", impact["sandboxes"]),
        ]

    def report(self, request, done: int, verb: str, skipped: dict):
        self.message_user(request, f"{done} thread(s) {verb}.", messages.SUCCESS)
        for reason, count in skipped.items():
            self.message_user(request, f"{count} thread(s) skipped: {reason}", messages.WARNING)

    # --- actions ---------------------------------------------------------------------

    @admin.action(description="Delete selected threads", permissions=["delete"])
    def delete_threads(self, request, queryset):
        if request.POST.get("post") != "yes":
            impact = deletion_impact(thread_ids_queryset=queryset)
            return self.confirm(
                request, queryset, action="delete_threads", title="Delete threads?",
                intro="These threads will be deleted with everything under them. This cannot be undone.",
                impact=self.impact_rows(impact), confirm_label="Yes, delete them",
            )
        selected = queryset.count()
        deleted = sum(services.delete_threads(thread_ids=ids) for ids in id_batches(queryset, BATCH))
        gone = {"already deleted (or removed with a parent)": selected - deleted} if selected - deleted else {}
        self.report(request, deleted, "deleted", gone)
        return None

    @admin.action(description="Prune old checkpoints (keep latest)", permissions=["delete"])
    def prune_keep_latest(self, request, queryset):
        if request.POST.get("post") != "yes":
            newest = Checkpoint.objects.filter(thread__in=queryset.values("pk")).values("thread", "checkpoint_ns")
            total = Checkpoint.objects.filter(thread__in=queryset.values("pk")).count()
            kept = newest.distinct().count()
            busy = queryset.filter(runs__status__in=["pending", "running"]).distinct().count()
            return self.confirm(
                request, queryset, action="prune_keep_latest", title="Prune old checkpoints?",
                intro="Each thread keeps only its newest checkpoint per namespace (with its pending writes).",
                impact=[("Threads selected", queryset.count()), ("Checkpoints now", total),
                        ("Checkpoints kept (newest per namespace)", kept), ("Checkpoints deleted", total - kept)],
                notes=[f"{busy} thread(s) with an active run will be skipped."] if busy else [],
                confirm_label="Yes, prune them",
            )
        selected = queryset.count()
        pruned = sum(services.keep_latest_checkpoints(thread_ids=ids) for ids in id_batches(queryset, BATCH))
        skipped = {"an active run, or nothing older to prune": selected - pruned} if selected - pruned else {}
        self.report(request, pruned, "pruned", skipped)
        return None

    @admin.action(description="Close selected threads", permissions=["delete"])
    def close_threads(self, request, queryset):
        if request.POST.get("post") != "yes":
            counts = queryset.aggregate(total=Count("pk"), idle=Count("pk", filter=Q(status="idle")))
            return self.confirm(
                request, queryset, action="close_threads", title="Close threads?",
                intro="Idle threads close (with their idle sub-threads); others are skipped: cancel them first.",
                impact=[("Threads selected", counts["total"]), ("Idle, will close", counts["idle"]),
                        ("Not idle, will be skipped", counts["total"] - counts["idle"])],
                confirm_label="Yes, close them",
            )
        closed, skipped = 0, {}
        for thread in queryset.select_related(None).only("pk", "status"):
            try:
                services.close_thread(thread=thread)
                closed += 1
            except ServiceError as exc:
                skipped[exc.detail] = skipped.get(exc.detail, 0) + 1
        self.report(request, closed, "closed", skipped)
        return None

    # --- the change page's own delete button -------------------------------------------

    def delete_view(self, request, object_id, extra_context=None):
        """Same path as the action: numbers from aggregates, then the service."""
        thread = self.get_object(request, object_id)
        if thread is None:
            return self._get_obj_does_not_exist_redirect(request, self.model._meta, object_id)
        if not self.has_delete_permission(request, thread):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        if request.method == "POST" and request.POST.get("post") == "yes":
            try:
                services.delete_thread(thread=thread)
                self.message_user(request, f"Thread {thread.pk} deleted.", messages.SUCCESS)
            except ServiceError as exc:
                self.message_user(request, exc.detail, messages.WARNING)
            return HttpResponseRedirect(reverse("admin:threads_thread_changelist"))
        impact = deletion_impact(thread_ids_queryset=Thread.objects.filter(pk=thread.pk))
        return self.confirm(
            request, Thread.objects.filter(pk=thread.pk), action=None, title=f"Delete thread {thread.pk}?",
            intro="This thread will be deleted with everything under it. This cannot be undone.",
            impact=self.impact_rows(impact), confirm_label="Yes, delete it",
        )


@admin.register(Run)
class RunAdmin(ViewOnlyAdmin):
    list_display = ["id", "thread", "seq", "status", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["thread", "agent"]


@admin.register(Message)
class MessageAdmin(ViewOnlyAdmin):
    list_display = ["id", "thread", "seq", "role", "created_at"]
    raw_id_fields = ["thread", "run", "agent"]


@admin.register(Checkpoint)
class CheckpointAdmin(ViewOnlyAdmin):
    list_display = ["id", "thread", "checkpoint_ns", "checkpoint_id", "created_at"]
    raw_id_fields = ["thread", "run"]


@admin.register(Approval)
class ApprovalAdmin(ViewOnlyAdmin):
    list_display = ["id", "thread", "status", "tool_name", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["thread", "run"]
