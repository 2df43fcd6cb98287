from django.apps import AppConfig


class ConfigAppConfig(AppConfig):
    """The project's own settings package as an app: installs the API's strict input types."""

    name = "config"
    label = "config"
    verbose_name = "Configuration"

    def ready(self):
        from .strict import install

        install()
