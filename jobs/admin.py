"""Background jobs for staff: the list, and each job's page with its live progress
(done / total, rate, time left) and a Cancel button."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from config.admin_base import number

from . import services
from receipts.models import DeletionReceipt

from .models import AFFECTED_LABELS, Job
from .selectors import job_progress


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["description", "kind", "state", "progress", "created_by", "source", "created_at", "finished_at"]
    list_filter = ["state", "kind", "source"]
    search_fields = ["description", "=id"]
    list_select_related = ["created_by"]
    list_per_page = 50

    @admin.display(description="progress")
    def progress(self, obj):
        return f"{number(obj.done)} / {number(max(obj.total, obj.done))}"

    def has_add_permission(self, request):
        return False  # started by the destructive actions and by `prune_threads --background`

    def has_change_permission(self, request, obj=None):
        return False  # read-only; cancelling has its own permission

    def has_delete_permission(self, request, obj=None):
        return False  # a job is a record of what was done

    def has_jobs_permission(self, request) -> bool:
        """The jobs' own view (or change) permission: every job, in the list too."""
        return super().has_view_permission(request)

    def has_view_permission(self, request, obj=None):
        """Staff who started a job may follow it without any permission on jobs: the
        list then shows their own jobs only (`get_queryset`), so the job page's
        breadcrumbs lead somewhere they can open."""
        if self.has_jobs_permission(request):
            return True
        if not (request.user.is_active and request.user.is_staff):
            return False
        return obj is None or obj.created_by_id == request.user.pk

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def get_queryset(self, request):
        jobs = super().get_queryset(request)
        return jobs if self.has_jobs_permission(request) else jobs.filter(created_by_id=request.user.pk)

    def has_cancel_permission(self, request, obj) -> bool:
        return obj.created_by_id == request.user.pk or request.user.has_perm("jobs.change_job")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/progress/", view(self.progress_view), name="jobs_job_progress"),
            path("<path:object_id>/cancel/", view(self.cancel_view), name="jobs_job_cancel"),
            *super().get_urls(),
        ]

    def _job(self, request, object_id) -> Job:
        try:  # any job, then the permission: someone else's job is a 403, not a 404
            job = Job.objects.select_related("created_by").filter(pk=unquote(object_id)).first()
        except ValidationError:
            job = None
        if job is None:
            raise Http404("No such job.")
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        return job

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The job page: read-only, the progress updated live by a small script
        polling the progress view (the numbers are right without it too)."""
        job = self._job(request, object_id)
        progress = job_progress(job)
        receipts = self.admin_site._registry.get(DeletionReceipt)
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "title": str(job), "job": job,
            "original": job, "progress": progress,
            "shown": {key: number(progress[key]) for key in ("done", "total", "affected", "batches")},
            "can_cancel": self.has_cancel_permission(request, job),
            "progress_url": reverse("admin:jobs_job_progress", args=[job.pk]),
            "cancel_url": reverse("admin:jobs_job_cancel", args=[job.pk]),
            "affected_label": AFFECTED_LABELS.get(job.kind, "Affected"),
            "receipts_shown": number(progress["receipts"]),
            # The receipts this job wrote (all share its id as their operation id).
            "receipts_url": reverse("admin:receipts_deletionreceipt_changelist") + f"?operation_id={job.pk}"
            if receipts is not None and receipts.has_view_permission(request) else None,
        }
        return TemplateResponse(request, "admin/jobs/job/job_page.html", context)

    def progress_view(self, request, object_id):
        return JsonResponse(job_progress(self._job(request, object_id)))

    def cancel_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = self._job(request, object_id)
        if not self.has_cancel_permission(request, job):
            raise PermissionDenied
        job = services.request_cancel(job=job)
        if job.finished:
            self.message_user(request, f"Job {job.get_state_display().lower()}.", messages.WARNING)
        else:
            self.message_user(request, "Cancelling: the job stops after the batch under way.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))
