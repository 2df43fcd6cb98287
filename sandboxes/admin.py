"""Sandboxes for staff: their state at the provider, and the recovery of a deletion
that keeps failing (the outbox retries and the reconciler run on their own too)."""

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename

from config.admin_base import ReadMostlyAdmin, plural

from . import services
from .models import Sandbox


@admin.register(Sandbox)
class SandboxAdmin(ReadMostlyAdmin):
    list_display = ["id", "project", "account", "provider", "external_id", "state", "attempts", "last_error",
                    "last_attempt_at", "updated_at"]
    list_filter = ["state", "provider"]
    search_fields = ["=id", "external_id", "project__name", "account__name"]
    list_select_related = ["project", "account"]
    actions = ["retry_deletion"]

    def has_add_permission(self, request):
        return False  # provisioned through the API

    def has_delete_permission(self, request, obj=None):
        return False  # a sandbox row goes only when the provider confirmed: see "Retry deletion now"

    def has_retry_permission(self, request):
        """The destructive action needs the model's delete permission, though the
        row itself is never deleted from here."""
        codename = get_permission_codename("delete", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.action(description="Retry deletion now", permissions=["retry"])
    def retry_deletion(self, request, queryset):
        ids = services.retry_sandbox_deletion(sandbox_ids=queryset.values_list("pk", flat=True))
        skipped = queryset.count() - len(ids)
        if ids:
            self.message_user(request, f"Deletion at the provider retried for {plural(len(ids), 'sandbox', 'sandboxes')}.",
                              messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{plural(skipped, 'sandbox', 'sandboxes')} skipped: not pending deletion "
                                       f"(only a sandbox pending deletion can be retried).", messages.WARNING)
