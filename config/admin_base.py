from django.contrib import admin


class ReadMostlyAdmin(admin.ModelAdmin):
    """Browse and search; destructive work goes through the services (actions)."""

    list_per_page = 50
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return super().get_readonly_fields(request, obj)
        return [f.name for f in self.model._meta.concrete_fields]


class ViewOnlyAdmin(ReadMostlyAdmin):
    """Rows that belong to a parent's lifecycle (messages, runs, checkpoints,
    versions): browse only; they are removed with their parent, by the services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
