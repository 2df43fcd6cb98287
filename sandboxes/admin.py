from django.contrib import admin, messages

from config.admin_base import ReadMostlyAdmin

from . import services
from .models import Sandbox


@admin.register(Sandbox)
class SandboxAdmin(ReadMostlyAdmin):
    list_display = ["id", "project", "account", "provider", "external_id", "state", "attempts", "last_error",
                    "last_attempt_at", "updated_at"]
    list_filter = ["state", "provider"]
    search_fields = ["=id", "external_id"]
    list_select_related = ["project", "account"]
    actions = ["retry_deletion"]

    def has_add_permission(self, request):
        return False  # provisioned through the API

    def has_delete_permission(self, request, obj=None):
        return False  # a sandbox row goes only when the provider confirmed: see "Retry deletion now"

    @admin.action(description="Retry deletion now", permissions=["change"])
    def retry_deletion(self, request, queryset):
        ids = services.retry_sandbox_deletion(sandbox_ids=queryset.values_list("pk", flat=True))
        skipped = queryset.count() - len(ids)
        self.message_user(request, f"Deletion retried for {len(ids)} sandbox(es).", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} sandbox(es) skipped: not pending deletion.", messages.WARNING)
