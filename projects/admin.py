"""Accounts, members and projects for support work. Deleting a project or an
account goes through its service (`delete_project`, `delete_account`) after a
confirmation page; above the job threshold, as a background job."""

from django import forms
from django.contrib import admin
from django.contrib.admin.actions import delete_selected
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet

from config.admin_base import ReadMostlyAdmin, ServiceDeletionAdmin
from jobs.models import JobKind

from . import services
from .models import Account, Membership, Project, Role
from .selectors import account_deletion_impact, last_owner_refusals, project_deletion_impact

EMBEDDINGS = "Embeddings removed from the vector store"


NO_OWNER = "An account needs an owner: give one of its members the owner role."


class MembershipFormSet(BaseInlineFormSet):
    """An account's members, saved together: refused when the account would be left
    with no owner (its last owners demoted or removed, or a new account with no owner
    row), by the rule of `projects.selectors.accounts_left_without_owner`."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        leaving, owner_kept = [], False
        for form in self.forms:
            if not getattr(form, "cleaned_data", None):
                continue  # an empty extra row
            removed = self.can_delete and self._should_delete_form(form)
            if form.cleaned_data.get("role") == Role.OWNER and not removed:
                owner_kept = True  # a row that is an owner after the save: new, kept or promoted
            elif form.instance.pk is not None:
                leaving.append(form.instance.pk)  # removed or demoted (the rule counts it if it is an owner now)
        if owner_kept:
            return
        if self.instance._state.adding:
            raise ValidationError(NO_OWNER, code="no_owner")
        refusals = last_owner_refusals(leaving=leaving)
        if refusals:
            raise ValidationError(refusals, code="last_owner")


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Account)
class AccountAdmin(ServiceDeletionAdmin):
    """Editable for support (limits, members)."""

    list_display = ["name", "id", "thread_limit", "agent_limit", "created_at"]
    search_fields = ["name", "=id", "memberships__user__username"]
    search_help_text = "An account's name or id, or a member's username."
    inlines = [MembershipInline]
    actions = ["delete_with_service"]
    job_kind = JobKind.DELETE_ACCOUNTS
    deletion_intro = ("These accounts will be deleted with everything they own: projects, threads and everything "
                      "under them, agents, memberships. Sandboxes are deleted at their provider and embeddings "
                      "removed after the deletion. This cannot be undone.")
    deletion_intro_one = ("This account will be deleted with everything it owns: projects, threads and everything "
                          "under them, agents, memberships. Its sandboxes are deleted at their provider and "
                          "embeddings removed after the deletion. This cannot be undone.")

    def deletion_impact(self, queryset):
        return account_deletion_impact(accounts=queryset)

    def deletion_rows(self, impact):
        return [
            ("accounts", "Accounts", impact["accounts"]), ("projects", "Projects", impact["projects"]),
            ("threads", "Threads (with their sub-threads)", impact["threads"]),
            ("messages", "Messages", impact["messages"]), ("runs", "Runs", impact["runs"]),
            ("checkpoints", "Checkpoints", impact["checkpoints"]),
            ("agents", "Agents (with their versions and triggers)", impact["agents"]),
            ("members", "Memberships", impact["members"]),
            ("sandboxes", "Sandboxes deleted at their provider", impact["sandboxes"]),
            ("embeddings", EMBEDDINGS, impact["embeddings"]),
        ]

    def delete_one(self, obj):
        services.delete_account(account=obj)


class MembershipForm(forms.ModelForm):
    """A membership's page: an owner's membership demoted, or moved to another
    account, is refused when it is its account's last owner."""

    class Meta:
        model = Membership
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is not None and (
            cleaned.get("role") != Role.OWNER or cleaned.get("account") != self.instance.account
        ):
            refusals = last_owner_refusals(leaving=[self.instance.pk])
            if refusals:
                raise ValidationError(refusals, code="last_owner")
        return cleaned


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Memberships; the last owner of an account is never removed (its delete page
    and the bulk delete list it as protected, with the reason) nor demoted."""

    form = MembershipForm
    list_display = ["user", "account", "role", "created_at"]
    list_filter = ["role", ("account", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "account__name"]
    raw_id_fields = ["user", "account"]
    actions = ["delete_selected"]

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        pks = [m.pk for m in objs]
        return deleted, counts, perms_needed, [*protected, *last_owner_refusals(leaving=pks)]

    @admin.action(description="Delete selected %(verbose_name_plural)s", permissions=["delete"])
    def delete_selected(self, request, queryset):
        """Django's own action, in one transaction: the check (which locks the
        accounts' rows) and the deletion see the same owners."""
        with transaction.atomic():
            return delete_selected(self, request, queryset)


@admin.register(Project)
class ProjectAdmin(ServiceDeletionAdmin, ReadMostlyAdmin):
    list_display = ["name", "id", "account", "created_at"]
    list_filter = [("account", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "=id", "account__name"]
    list_select_related = ["account"]
    actions = ["delete_with_service"]
    job_kind = JobKind.DELETE_PROJECTS
    deletion_intro = ("These projects will be deleted with their threads and everything under them. Their "
                      "sandboxes are deleted at their provider and embeddings removed after the deletion. "
                      "This cannot be undone.")
    deletion_intro_one = ("This project will be deleted with its threads and everything under them. Its sandbox "
                          "is deleted at its provider and embeddings removed after the deletion. "
                          "This cannot be undone.")

    def deletion_impact(self, queryset):
        return project_deletion_impact(projects=queryset)

    def deletion_rows(self, impact):
        return [
            ("projects", "Projects", impact["projects"]),
            ("threads", "Threads (with their sub-threads)", impact["threads"]),
            ("messages", "Messages", impact["messages"]), ("runs", "Runs", impact["runs"]),
            ("checkpoints", "Checkpoints", impact["checkpoints"]),
            ("sandboxes", "Sandboxes deleted at their provider", impact["sandboxes"]),
            ("embeddings", EMBEDDINGS, impact["embeddings"]),
        ]

    def delete_one(self, obj):
        services.delete_project(project=obj)


User = get_user_model()


class MemberAwareUserAdmin(UserAdmin):
    """Django's user admin, with what deleting a user does here: the user's
    memberships go too (`projects.signals`, a soft reference Django's collector does
    not see), so the delete page lists them; a user who is the last owner of an
    account is refused (the account would be left with no one who can reach it), with
    the reason: add another owner, or delete the account first."""

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        users = {user.pk for user in objs}
        memberships = list(Membership.objects.filter(user_id__in=users).select_related("account", "user")
                           .order_by("account__name"))
        deleted += [f"Membership: {m}" for m in memberships]
        if memberships:
            counts["memberships"] = len(memberships)
        protected += last_owner_refusals(leaving=[m.pk for m in memberships])
        return deleted, counts, perms_needed, protected


admin.site.unregister(User)
admin.site.register(User, MemberAwareUserAdmin)
