"""Deletion receipts for staff: read-only, filterable by cleanup state to find the
cleanups still pending, with a retry of the pending ones."""

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename

from config.admin_base import ReadMostlyAdmin

from . import services
from .models import CleanupState, DeletionReceipt


@admin.register(DeletionReceipt)
class DeletionReceiptAdmin(ReadMostlyAdmin):
    list_display = ["created_at", "kind", "source", "actor", "account_id", "threads", "messages", "runs",
                    "checkpoints", "projects", "sandboxes", "embeddings", "cleanup_state", "cleanup_error"]
    list_filter = ["cleanup_state", "kind", "source", "created_at"]
    search_fields = ["=id", "=account_id", "=operation_id", "actor"]
    search_help_text = "A receipt, account or operation id, or the acting user's name."
    date_hierarchy = "created_at"
    exclude = ["embedding_thread_ids", "embedding_project_ids"]
    actions = ["retry_cleanup"]

    def lookup_allowed(self, lookup, value, request=None):
        """`?operation_id=<id>`: the receipts of one operation (a job's page links to
        those its batches wrote)."""
        return lookup in ("operation_id", "operation_id__exact") or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request):
        return False  # written by the deleting services only

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # purged by age: `manage.py purge_receipts`

    def has_retry_permission(self, request):
        codename = get_permission_codename("view", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    @admin.action(description="Retry the cleanup now", permissions=["retry"])
    def retry_cleanup(self, request, queryset):
        ids = [str(pk) for pk in queryset.filter(cleanup_state=CleanupState.PENDING).values_list("pk", flat=True)]
        if ids:
            services.schedule_cleanup(receipt_ids=ids)
            self.message_user(request, f"Cleanup scheduled for {len(ids):,} pending receipt(s).", messages.SUCCESS)
        skipped = queryset.count() - len(ids)
        if skipped:
            self.message_user(request, f"{skipped:,} receipt(s) skipped: their cleanup is complete.", messages.WARNING)
