"""The admin for staff: threads with their counts, and the destructive work — delete,
prune old checkpoints, close — through the same services as the API and commands.

Every confirmation page shows what will happen in numbers computed with aggregate
queries (`threads.selectors.deletion_impact` and counts), never by listing related
rows, so it stays fast for a thread with 100,000 messages or a selection of 100,000
threads. The services then run in batches of ids (keyset pagination), one
transaction per batch.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, TextField
from django.db.models.functions import Cast
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator

from config.admin_base import ConfirmationMixin, ReadMostlyAdmin, ViewOnlyAdmin, number, plural
from config.errors import Invalid, NotFound, ServiceError
from jobs.models import JobKind
from jobs.services import job_threshold
from projects.selectors import parse_uuid

from . import services
from .models import Approval, Checkpoint, Message, Run, Thread, ThreadStatus
from .selectors import deletion_impact, id_batches
from .services.pruning import without_active_run

BATCH = 1000
MESSAGES_PER_PAGE = 50
RUNS_SHOWN = 50


def preview(message: Message, length: int = 120) -> str:
    return Truncator(" ".join(message.text.split())).chars(length) or "(no text)"


class NoneLabelledFilter(admin.RelatedOnlyFieldListFilter):
    """A related filter whose "no value" choice reads in words, not "-"."""

    none_label = "None"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.empty_value_display = self.none_label


class NoAgentFilter(NoneLabelledFilter):
    none_label = "No agent"


def count_of(model):
    """A correlated COUNT per thread row: part of the list query, not one per row."""
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


def deletion_rows(impact: dict) -> list:
    """(key, label, number) rows of the deletion confirmation table."""
    labels = {
        "threads": "Threads (with their sub-threads)", "messages": "Messages", "runs": "Runs",
        "checkpoints": "Checkpoints", "projects": "Projects left empty, deleted with them",
        "sandboxes": "Sandboxes deleted with those projects",
    }
    return [(key, label, impact[key]) for key, label in labels.items()]


def prune_rows(queryset) -> list:
    """What keep_latest will do: threads with an active run are skipped, the others
    keep their newest checkpoint per namespace. Four aggregate queries."""
    prunable = without_active_run(queryset.order_by()).values("pk")
    checkpoints = Checkpoint.objects.filter(thread__in=prunable)
    selected = queryset.count()
    prunable_count = prunable.count()
    total = checkpoints.count()
    kept = checkpoints.order_by().values("thread", "checkpoint_ns").distinct().count()
    return [
        ("threads", "Threads selected", selected),
        ("skipped", "Threads with an active run, skipped", selected - prunable_count),
        ("checkpoints", "Checkpoints of the other threads", total),
        ("kept", "Checkpoints kept (newest per thread and namespace)", kept),
        ("deleted", "Checkpoints deleted, with their pending writes", total - kept),
    ]


def close_rows(queryset) -> list:
    counts = queryset.order_by().aggregate(
        total=Count("pk"), idle=Count("pk", filter=Q(status=ThreadStatus.IDLE)),
        closed=Count("pk", filter=Q(status=ThreadStatus.CLOSED)),
    )
    busy = counts["total"] - counts["idle"] - counts["closed"]
    return [
        ("threads", "Threads selected", counts["total"]),
        ("idle", "Idle, will close (with their idle sub-threads)", counts["idle"]),
        ("closed", "Already closed, skipped", counts["closed"]),
        ("busy", "Running or awaiting, skipped (cancel them first)", busy),
    ]


def background_note(count: int) -> str:
    if count <= job_threshold():
        return ""
    return (f"More than {number(job_threshold())} threads: this runs in the background, in batches of "
            f"{number(settings.BACKGROUND_JOBS['batch_size'])}; you can follow it and cancel it on its page.")


@admin.register(Thread)
class ThreadAdmin(ConfirmationMixin, ReadMostlyAdmin):
    list_display = ["id", "title", "project", "account", "agent", "status", "message_count", "run_count",
                    "last_activity_at"]
    list_filter = ["status", ("account", NoneLabelledFilter), ("project", NoneLabelledFilter),
                   ("agent", NoAgentFilter), AgeFilter]
    search_fields = ["title"]  # enables the search box; get_search_results does the work
    search_help_text = "A thread id, or words of its title or metadata."
    list_select_related = ["project", "account", "agent"]
    actions = ["delete_threads", "prune_keep_latest", "close_threads"]
    raw_id_fields = ["parent_thread", "agent", "project", "account", "schedule"]
    change_form_template = "admin/threads/thread/change_form.html"

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
        return number(obj.message_count or 0)

    @admin.display(description="runs", ordering="run_count")
    def run_count(self, obj):
        return number(obj.run_count or 0)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=parse_uuid(term)), False
        except Invalid:
            pass
        return queryset.annotate(metadata_text=Cast("metadata", TextField())).filter(
            Q(title__icontains=term) | Q(metadata_text__icontains=term)
        ), False

    # --- the thread's page: its messages (a page at a time) and its latest runs ------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        thread_id = unquote(object_id)
        try:
            thread_id = parse_uuid(thread_id)
        except Invalid:
            return super().change_view(request, object_id, form_url, extra_context)
        messages_page = Paginator(
            Message.objects.filter(thread_id=thread_id).order_by("seq").only("id", "seq", "role", "content",
                                                                            "created_at", "run_id"),
            MESSAGES_PER_PAGE,
        ).get_page(request.GET.get("messages_page"))
        runs = list(Run.objects.filter(thread_id=thread_id).order_by("-seq")[:RUNS_SHOWN])
        # Links only to pages the user may open: without the view permission on
        # messages or runs, their numbers are plain text (those pages would be a 403).
        registry = self.admin_site._registry
        can_view = {model: model in registry and registry[model].has_view_permission(request)
                    for model in (Message, Run)}
        extra = {
            "thread_sections": True,
            "thread_messages": [(m, preview(m)) for m in messages_page], "messages_page": messages_page,
            "messages_list_url": reverse("admin:threads_message_changelist") + f"?thread__id__exact={thread_id}"
            if can_view[Message] else None,
            "thread_runs": runs, "runs_shown": RUNS_SHOWN,
            "runs_list_url": reverse("admin:threads_run_changelist") + f"?thread__id__exact={thread_id}"
            if can_view[Run] else None,
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    # --- results ---------------------------------------------------------------------

    def report(self, request, done: int, verb: str, skipped: dict):
        """How many were done (a warning when none was), then one warning per reason
        for those skipped (none for a count of 0)."""
        self.message_user(request, f"{plural(done, 'thread')} {verb}.", messages.SUCCESS if done else messages.WARNING)
        self.report_skipped(request, skipped)

    def report_skipped(self, request, skipped: dict):
        for reason, count in skipped.items():
            if count:
                self.message_user(request, f"{plural(count, 'thread')} skipped: {reason}", messages.WARNING)

    def start_thread_job(self, request, *, total: int, **job):
        """`start_job`, then saying how many of the posted threads were already deleted
        (the job's scope is those still there; its page reports the rest)."""
        response = self.start_job(request, total=total, **job)
        self.report_skipped(request, {"already deleted": self.already_deleted(request, total)})
        return response

    def first_threads(self, queryset):
        return self.named_objects(queryset, "title")

    # --- actions ---------------------------------------------------------------------

    @admin.action(description="Delete selected threads", permissions=["delete"])
    def delete_threads(self, request, queryset):
        selected = queryset.count()
        if request.POST.get("post") != "yes":
            return self.confirm(
                request, action="delete_threads", title=f"Delete {plural(selected, 'thread')}?",
                intro="These threads will be deleted with everything under them. This cannot be undone.",
                rows=deletion_rows(deletion_impact(thread_ids_queryset=queryset)), confirm_label="Yes, delete them",
                named=self.first_threads(queryset), named_total=selected, named_label="Threads deleted",
                note=background_note(selected), allowed=selected > 0,
            )
        if selected > job_threshold():
            return self.start_thread_job(request, kind=JobKind.DELETE_THREADS, targets=queryset, total=selected,
                                         description=f"Delete {plural(selected, 'thread')}")
        # for the admin's history: the threads as they were (without the list's per-row counts)
        shown = list(Thread.objects.filter(pk__in=queryset.order_by().values("pk")).only("pk", "title"))
        deleted = sum(services.delete_threads(thread_ids=ids) for ids in id_batches(queryset, BATCH))
        kept = set(Thread.objects.filter(pk__in=[t.pk for t in shown]).values_list("pk", flat=True))
        self.log_deletions(request, [t for t in shown if t.pk not in kept])  # those that went
        self.report(request, deleted, "deleted", {
            "already deleted, or removed with a parent": selected - deleted,  # during this request
            "already deleted": self.already_deleted(request, selected),  # before it (not in the queryset)
        })
        return None

    @admin.action(description="Prune old checkpoints (keep latest)", permissions=["delete"])
    def prune_keep_latest(self, request, queryset):
        selected = queryset.count()
        if request.POST.get("post") != "yes":
            return self.confirm(
                request, action="prune_keep_latest", title=f"Prune old checkpoints of {plural(selected, 'thread')}?",
                intro="Each thread keeps only its newest checkpoint per namespace (with its pending writes); "
                      "its messages and runs stay.",
                rows=prune_rows(queryset), confirm_label="Yes, prune them",
                named=self.first_threads(queryset), named_total=selected, named_label="Threads pruned",
                note=background_note(selected), allowed=selected > 0,
            )
        if selected > job_threshold():
            return self.start_thread_job(request, kind=JobKind.PRUNE_KEEP_LATEST, targets=queryset, total=selected,
                                         description=f"Prune old checkpoints of {plural(selected, 'thread')}")
        pruned = sum(services.keep_latest_checkpoints(thread_ids=ids) for ids in id_batches(queryset, BATCH))
        skipped = {"an active run, or no older checkpoint to prune": selected - pruned,
                   "already deleted": self.already_deleted(request, selected)}
        self.report(request, pruned, "pruned", skipped)
        return None

    @admin.action(description="Close selected threads", permissions=["delete"])
    def close_threads(self, request, queryset):
        if request.POST.get("post") != "yes":
            rows = close_rows(queryset)
            return self.confirm(
                request, action="close_threads", title=f"Close {plural(rows[0][2], 'thread')}?",
                intro="Idle threads close, with their idle sub-threads; a closed thread takes no new turn.",
                rows=rows, confirm_label="Yes, close them",
                named=self.first_threads(queryset), named_total=rows[0][2], named_label="Threads selected",
                note=background_note(rows[0][2]), allowed=rows[1][2] > 0,  # only idle threads close
            )
        selected = queryset.count()
        if selected > job_threshold():
            return self.start_thread_job(request, kind=JobKind.CLOSE_THREADS, targets=queryset, total=selected,
                                         description=f"Close {plural(selected, 'thread')}")
        closed, skipped = 0, {"already deleted": self.already_deleted(request, selected)}
        for ids in id_batches(queryset, BATCH):
            done, refused = services.close_threads(thread_ids=ids)  # one transaction and receipt per batch
            closed += done
            for reason, count in refused.items():
                skipped[reason] = skipped.get(reason, 0) + count
        self.report(request, closed, "closed", skipped)
        return None

    # --- the change page's own delete button -------------------------------------------

    def delete_view(self, request, object_id, extra_context=None):
        """Same path as the action — numbers from aggregates, then the service —
        instead of Django's page listing every related row."""
        thread = self.get_object(request, unquote(object_id))
        if thread is None:
            return self._get_obj_does_not_exist_redirect(request, self.model._meta, object_id)
        if not self.has_delete_permission(request, thread):
            raise PermissionDenied
        if request.method == "POST" and request.POST.get("post") == "yes":
            try:
                services.delete_thread(thread=thread)
                self.log_deletions(request, [thread])
                self.message_user(request, f"Thread “{thread}” deleted.", messages.SUCCESS)
            except NotFound:  # deleted meanwhile (the page posted twice): as the bulk action says it
                self.report_skipped(request, {"already deleted": 1})
            except ServiceError as exc:
                self.message_user(request, exc.detail, messages.WARNING)
            return HttpResponseRedirect(reverse("admin:threads_thread_changelist"))
        return self.confirm(
            request, obj=thread, title=f"Delete thread “{thread}”?",
            intro="This thread will be deleted with everything under it. This cannot be undone.",
            rows=deletion_rows(deletion_impact(thread_ids_queryset=Thread.objects.filter(pk=thread.pk))),
            confirm_label="Yes, delete it", cancel_url=reverse("admin:threads_thread_change", args=[quote(thread.pk)]),
        )


class ThreadScopedAdmin(ViewOnlyAdmin):
    """Rows under a thread: filterable by it (`?thread__id__exact=`) and searchable by its id."""

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        try:
            return queryset.filter(Q(pk=parse_uuid(term)) | Q(thread_id=parse_uuid(term))), False
        except Invalid:
            return super().get_search_results(request, queryset, search_term)


@admin.register(Run)
class RunAdmin(ThreadScopedAdmin):
    list_display = ["__str__", "thread", "seq", "status", "model", "created_at", "completed_at"]
    list_filter = ["status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["model"]
    search_help_text = "A run or thread id, or a model name."
    list_select_related = ["thread"]
    raw_id_fields = ["thread", "agent"]


@admin.register(Message)
class MessageAdmin(ThreadScopedAdmin):
    list_display = ["__str__", "thread", "seq", "role", "content_preview", "created_at"]
    list_filter = ["role", ("created_at", admin.DateFieldListFilter), ("agent", NoAgentFilter)]
    search_fields = ["seq"]  # enables the search box; get_search_results does the work
    search_help_text = "A message or thread id, or words of the content."
    list_select_related = ["thread"]
    raw_id_fields = ["thread", "run", "agent"]

    @admin.display(description="content")
    def content_preview(self, obj):
        return preview(obj)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            uid = parse_uuid(term)
            return queryset.filter(Q(pk=uid) | Q(thread_id=uid)), False
        except Invalid:
            pass
        return queryset.annotate(content_text=Cast("content", TextField())).filter(content_text__icontains=term), False


@admin.register(Checkpoint)
class CheckpointAdmin(ThreadScopedAdmin):
    list_display = ["__str__", "thread", "checkpoint_ns", "checkpoint_id", "created_at"]
    search_fields = ["checkpoint_id"]
    search_help_text = "A thread id, or a checkpoint id."
    list_select_related = ["thread"]
    raw_id_fields = ["thread", "run"]

    def get_search_results(self, request, queryset, search_term):
        try:
            return queryset.filter(thread_id=parse_uuid(search_term.strip())), False
        except Invalid:
            return super(ThreadScopedAdmin, self).get_search_results(request, queryset, search_term)


@admin.register(Approval)
class ApprovalAdmin(ThreadScopedAdmin):
    list_display = ["id", "thread", "status", "tool_name", "created_at"]
    list_filter = ["status"]
    search_fields = ["tool_name"]
    list_select_related = ["thread"]
    raw_id_fields = ["thread", "run"]
