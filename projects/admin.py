"""Accounts, members and projects for support work."""

from django.contrib import admin

from config.admin_base import ReadMostlyAdmin

from . import services
from .models import Account, Membership, Project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    """Editable for support (limits, members). Deleting an account removes its
    projects and threads by the database cascade; the deletion signals retire its
    sandboxes and embeddings."""

    list_display = ["name", "id", "thread_limit", "agent_limit", "created_at"]
    search_fields = ["name", "=id", "memberships__user__username"]
    search_help_text = "An account's name or id, or a member's username."
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "account", "role", "created_at"]
    list_filter = ["role", ("account", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "account__name"]
    raw_id_fields = ["user", "account"]


@admin.register(Project)
class ProjectAdmin(ReadMostlyAdmin):
    list_display = ["name", "id", "account", "created_at"]
    list_filter = [("account", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "=id", "account__name"]
    list_select_related = ["account"]

    def delete_model(self, request, obj):
        services.delete_project(project=obj)

    def delete_queryset(self, request, queryset):
        for project in queryset:
            services.delete_project(project=project)
