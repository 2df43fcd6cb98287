from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig
from django.core.exceptions import ImproperlyConfigured


class AdminConfig(DjangoAdminConfig):
    """Django's admin with the project's site (`config.admin_site.AdminSite`)."""

    default_site = "config.admin_site.AdminSite"


class ConfigAppConfig(AppConfig):
    """The project's own settings package as an app: installs the API's strict input
    types and checks the settings that can only be checked once the apps are loaded."""

    name = "config"
    label = "config"
    verbose_name = "Configuration"

    def ready(self):
        from .strict import install

        install()
        check_vector_store_backend()


def check_vector_store_backend() -> None:
    """`VECTOR_STORE_BACKEND` names a `threads.vectorstore.VectorStore` class, or the
    process stops here — in every process that sets Django up (manage.py, uvicorn via
    config.asgi, the Celery worker) — rather than failing each indexing, search and
    cleanup task later."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    from threads.vectorstore import VectorStore

    path = settings.VECTOR_STORE_BACKEND
    try:
        backend = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"VECTOR_STORE_BACKEND must be the dotted path of a vector store class (a subclass of "
            f"threads.vectorstore.VectorStore, e.g. the default threads.vectorstore.DatabaseVectorStore), "
            f"got {path!r}: {exc}"
        ) from None
    if not (isinstance(backend, type) and issubclass(backend, VectorStore)):
        raise ImproperlyConfigured(
            f"VECTOR_STORE_BACKEND must name a subclass of threads.vectorstore.VectorStore "
            f"(e.g. the default threads.vectorstore.DatabaseVectorStore), got {path!r}"
        )
