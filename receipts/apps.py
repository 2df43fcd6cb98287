from django.apps import AppConfig


class ReceiptsConfig(AppConfig):
    name = "receipts"
    verbose_name = "Deletion receipts"

    def ready(self):
        from . import signals  # noqa: F401
