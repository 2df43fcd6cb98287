"""Accounts, members and projects for support work. Deleting a project or an
account goes through its service (`delete_project`, `delete_account`) after a
confirmation page; above the job threshold, as a background job."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from config.admin_base import ReadMostlyAdmin, ServiceDeletionAdmin
from jobs.models import JobKind

from . import services
from .models import Account, Membership, Project, Role
from .selectors import account_deletion_impact, project_deletion_impact

EMBEDDINGS = "Embeddings removed from the vector store"


class MembershipInline(admin.TabularInline):
    model = Membership
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


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "account", "role", "created_at"]
    list_filter = ["role", ("account", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "account__name"]
    raw_id_fields = ["user", "account"]


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
        owned = {m.account_id: m for m in memberships if m.role == Role.OWNER}
        others = set(Membership.objects.filter(account_id__in=owned, role=Role.OWNER).exclude(user_id__in=users)
                     .values_list("account_id", flat=True))
        protected += [f"Account “{m.account}”: {m.user} is its last owner — add another owner, or delete the "
                      f"account first." for account_id, m in owned.items() if account_id not in others]
        return deleted, counts, perms_needed, protected


admin.site.unregister(User)
admin.site.register(User, MemberAwareUserAdmin)
