from django.contrib import admin


class ReadMostlyAdmin(admin.ModelAdmin):
    """Browse and search; destructive work goes through the services (actions)."""

    list_per_page = 50
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return super().get_readonly_fields(request, obj)
        return [f.name for f in self.model._meta.concrete_fields]
