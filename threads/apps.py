from django.apps import AppConfig


class ThreadsConfig(AppConfig):
    name = 'threads'

    def ready(self):
        from . import signals  # noqa: F401
