"""Shared admin behaviour: read-mostly pages, and the confirmation pages through
which every destructive action goes (numbers from aggregate queries, the first
objects by name, then a service, or a background job above the threshold)."""

import copy

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import capfirst

from config.errors import NotFound, ServiceError

NAMED = 10  # objects named on a confirmation page, then "and N more"
SHOWN_AT = "shown_at"  # the field of a confirmation page that says when it was shown


def number(value) -> str:
    """Thousands separators; a dash for a count nobody can tell."""
    return "—" if value is None else f"{value:,}"


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    return f"{number(count)} {singular if count == 1 else (plural_form or singular + 's')}"


class ReadMostlyAdmin(admin.ModelAdmin):
    """Browse and search; destructive work goes through the services (actions).
    A page with nothing editable shows no Save buttons."""

    list_per_page = 50
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return super().get_readonly_fields(request, obj)
        return [f.name for f in self.model._meta.concrete_fields]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if change:  # every field (and inline) is read-only: nothing to save
            context.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False)
        return super().render_change_form(request, context, add, change, form_url, obj)


class ViewOnlyAdmin(ReadMostlyAdmin):
    """Rows that belong to a parent's lifecycle (messages, runs, checkpoints,
    versions): browse only; they are removed with their parent, by the services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ConfirmationMixin:
    """The confirmation page of a destructive action, styled like Django's own.

    With "select all" (`select_across`), Django evaluates the changelist's query again
    when the page is posted back: the page carries the time it was shown, and objects
    created since are left out (an older object that came to match the filters since
    would still be included; one that stopped matching, or went, is not).
    """

    def response_action(self, request, queryset, **kwargs):
        try:
            shown_at = parse_datetime(request.POST.get(SHOWN_AT, ""))
        except ValueError:  # well-formed but not a date (a hand-edited page): do nothing
            self.message_user(request, f"The confirmation page was altered ({SHOWN_AT} is not a date and time): "
                                       f"nothing was done.", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        if shown_at is not None and request.POST.get("select_across") == "1":
            queryset = queryset.filter(created_at__lte=shown_at)
        return super().response_action(request, queryset, **kwargs)

    def named_objects(self, queryset, order_by: str) -> list:
        """The first objects by name, linked to their pages (one query)."""
        named = []
        for obj in queryset.order_by(order_by, "pk")[:NAMED]:
            try:
                url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[quote(obj.pk)])
            except NoReverseMatch:
                url = None
            named.append((str(obj), url))
        return named

    def confirm(self, request, *, title, intro, rows, confirm_label, action=None, cancel_url=None, obj=None,
                named=(), named_total=0, named_label="", refused=(), note="", allowed=True):
        """Render the page; posting it back (with `post=yes`) runs the action.
        `rows` are (key, label, number); `refused` (name, reason) pairs."""
        named = list(named)
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": title, "intro": intro,
            "rows": [(key, label, value, number(value)) for key, label, value in rows],
            "confirm_label": confirm_label, "action": action, "object": obj,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across") == "1",
            "cancel_url": cancel_url or request.get_full_path(),
            "named": named, "named_label": named_label, "more": max(named_total - len(named), 0),
            "more_text": number(max(named_total - len(named), 0)), "refused": list(refused), "note": note,
            "allowed": allowed, "shown_at": timezone.now().isoformat(),
        }
        return TemplateResponse(request, "admin/confirm_bulk_action.html", context)

    def start_job(self, request, *, kind: str, targets, total: int, description: str):
        """Submit a background job and send the user to its page; or, when an
        unfinished job of that kind already covers these targets (the page posted
        twice), send them to that job's page, saying so, and start nothing."""
        from jobs.models import FINISHED_STATES, Job
        from jobs.services import submit_job_once

        job, started = submit_job_once(kind=kind, targets=targets, total=total, description=description,
                                       created_by=request.user, source="admin")
        if not started:
            jobs = self.admin_site._registry.get(Job)
            if jobs is not None and jobs.has_view_permission(request, job):
                self.message_user(request, f"{description}: already running — this job, started "
                                           f"{timezone.localtime(job.created_at):%Y-%m-%d %H:%M:%S}, has them all; "
                                           f"nothing new was started. This page follows its progress.",
                                  messages.WARNING)
                return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))
            self.message_user(request, f"{description}: already running — a job started by "
                                       f"{job.created_by or 'someone else'} has them all; nothing new was started.",
                              messages.WARNING)
            return None
        job.refresh_from_db(fields=["state"])
        if job.state in FINISHED_STATES:  # tasks in-process (no broker): it has run already
            self.message_user(request, f"{description}: {job.get_state_display().lower()}. This page has its figures.",
                              messages.SUCCESS if job.state == "done" else messages.WARNING)
        else:
            self.message_user(request, f"{description}: started in the background. This page follows its progress.",
                              messages.INFO)
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def already_deleted(self, request, found: int) -> int:
        """How many of the ids posted with an action (not "select all") are no longer
        there: Django's `response_action` has already left them out of the queryset,
        so `found` (what is left) is compared with what was posted."""
        if request.method != "POST" or request.POST.get("select_across") == "1":
            return 0
        pk = self.opts.pk
        posted = set()
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                posted.add(pk.to_python(value))
            except ValidationError:
                continue
        return max(len(posted) - found, 0)


class ServiceDeletionAdmin(ConfirmationMixin, admin.ModelAdmin):
    """Deleting through the model's deletion service, from the change page's Delete
    button and from the bulk action, both after one confirmation page.

    Replaces Django's delete view and action: those ask Django's collector for every
    related row (and the delete permission of each child model), though every child
    here is removed by the database's own `ON DELETE CASCADE`. Above the job
    threshold (in threads), the deletion runs as a background job. Objects the
    service refuses (`refusals`) are listed with their reasons and left alone; the
    delete page of one answers 403 with its reason.
    """

    name_field = "name"
    job_kind = ""
    deletion_intro = ""  # the confirmation's intro for several objects
    deletion_intro_one = ""  # for one (its page, or a selection of one); deletion_intro if empty
    job_note = "the deletion runs in the background, in batches, and you can follow it and cancel it on its page."

    def deletion_impact(self, queryset) -> dict:
        raise NotImplementedError

    def deletion_rows(self, impact: dict) -> list:
        raise NotImplementedError

    def delete_one(self, obj) -> None:
        raise NotImplementedError

    def refusals(self, impact: dict) -> dict:
        """{object: reason} of the selected objects the service would refuse."""
        return {}

    def job_threads(self, impact: dict) -> int:
        """The threads the deletion goes through (against the job threshold)."""
        return impact.get("threads") or 0

    def deleted_message(self, deleted: int, threads: int, obj=None) -> str:
        opts = self.opts
        return f"{plural(deleted, opts.verbose_name, opts.verbose_name_plural)} deleted ({plural(threads, 'thread')})."

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)  # replaced by an action that calls run_deletion
        return actions

    @admin.action(description="Delete selected %(verbose_name_plural)s", permissions=["delete"])
    def delete_with_service(self, request, queryset):
        return self.run_deletion(request, queryset, action="delete_with_service")

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_delete_permission(request):  # the user's, for the model; refusals come next
            raise PermissionDenied
        response = self.run_deletion(request, self.model.objects.filter(pk=obj.pk), obj=obj)
        return response or HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))

    def delete_model(self, request, obj):
        self.delete_one(obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_one(obj)

    def run_deletion(self, request, queryset, *, action=None, obj=None):
        from jobs.services import job_threshold

        opts = self.opts
        impact = self.deletion_impact(queryset)
        refused = self.refusals(impact)
        refused_rows = [(str(o), reason) for o, reason in refused.items()]
        count = impact[opts.model_name + "s"]
        threads = self.job_threads(impact)
        change_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(obj.pk)]) if obj else None
        if obj is not None and refused:
            response = self.confirm(
                request, obj=obj, title=f"Cannot delete {opts.verbose_name} “{obj}”",
                intro=f"This {opts.verbose_name} is protected and stays.", rows=self.deletion_rows(impact),
                confirm_label="Yes, delete it", cancel_url=change_url, refused=refused_rows,
                allowed=False,
            )
            response.status_code = 403
            return response
        deletable = queryset.exclude(pk__in=[o.pk for o in refused]) if refused else queryset
        if request.method != "POST" or request.POST.get("post") != "yes":
            noun = opts.verbose_name if count == 1 else opts.verbose_name_plural
            return self.confirm(
                request, action=action, obj=obj,
                title=f"Delete {opts.verbose_name} “{obj}”?" if obj else f"Delete {number(count)} {noun}?",
                intro=(self.deletion_intro_one or self.deletion_intro) if obj or count == 1 else self.deletion_intro,
                rows=self.deletion_rows(impact),
                confirm_label="Yes, delete it" if obj else "Yes, delete them", cancel_url=change_url,
                named=self.named_objects(deletable, self.name_field), named_total=count,
                named_label=f"{capfirst(opts.verbose_name_plural)} deleted",
                refused=refused_rows, allowed=count > 0,
                note=f"More than {plural(job_threshold(), 'thread')}: {self.job_note}" if threads > job_threshold()
                else "",
            )
        missing = 0 if obj is not None else self.already_deleted(request, count + len(refused))  # gone before
        if threads > job_threshold():
            for target, reason in refused.items():
                self.message_user(request, f"“{target}” refused: {reason}", messages.WARNING)
            self.skipped_message(request, missing)
            what = f"{opts.verbose_name} “{obj}”" if obj else plural(count, opts.verbose_name, opts.verbose_name_plural)
            return self.start_job(request, kind=self.job_kind, targets=deletable, total=threads,
                                  description=f"Delete {what} ({plural(threads, 'thread')})")
        deleted, gone, logged = 0, missing, []
        for target in queryset.order_by("pk"):
            try:
                shown = copy.copy(target)  # for the admin's history: a deletion may clear the instance's pk
                self.delete_one(target)
                deleted += 1
                logged.append(shown)
            except NotFound:
                gone += 1
            except ServiceError as exc:  # refused meanwhile (or listed as refused above)
                self.message_user(request, f"“{target}” refused: {exc.detail}", messages.WARNING)
                if obj is not None:
                    return HttpResponseRedirect(change_url)
        if logged:
            self.log_deletions(request, logged)  # "Recent actions" and each object's history
        if deleted:
            self.message_user(request, self.deleted_message(deleted, threads, obj), messages.SUCCESS)
        self.skipped_message(request, gone)
        return None

    def skipped_message(self, request, gone: int) -> None:
        if gone:
            opts = self.opts
            self.message_user(request, f"{plural(gone, opts.verbose_name, opts.verbose_name_plural)} "
                                       f"skipped: already deleted.", messages.WARNING)
