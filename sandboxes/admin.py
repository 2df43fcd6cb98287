from django.contrib import admin

from config.admin_base import ReadMostlyAdmin

from .models import Sandbox


@admin.register(Sandbox)
class SandboxAdmin(ReadMostlyAdmin):
    list_display = ["id", "project", "provider", "external_id", "state", "attempts", "last_error", "updated_at"]
    list_filter = ["state", "provider"]
    search_fields = ["=id", "external_id"]
