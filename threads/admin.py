from django.contrib import admin

from config.admin_base import ReadMostlyAdmin

from .models import Approval, Checkpoint, Message, Run, Thread


@admin.register(Thread)
class ThreadAdmin(ReadMostlyAdmin):
    list_display = ["id", "title", "project", "account", "agent", "status", "last_activity_at"]
    list_filter = ["status"]
    search_fields = ["=id", "title"]
    list_select_related = ["project", "account", "agent"]


@admin.register(Run)
class RunAdmin(ReadMostlyAdmin):
    list_display = ["id", "thread", "seq", "status", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["thread"]


@admin.register(Message)
class MessageAdmin(ReadMostlyAdmin):
    list_display = ["id", "thread", "seq", "role", "created_at"]
    raw_id_fields = ["thread", "run"]


@admin.register(Checkpoint)
class CheckpointAdmin(ReadMostlyAdmin):
    list_display = ["id", "thread", "checkpoint_ns", "checkpoint_id", "created_at"]
    raw_id_fields = ["thread", "run"]


@admin.register(Approval)
class ApprovalAdmin(ReadMostlyAdmin):
    list_display = ["id", "thread", "status", "tool_name", "created_at"]
    list_filter = ["status"]
