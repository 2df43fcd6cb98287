"""Every request records its deletions as done by its user, from `api` (or `admin`
under the admin site)."""

from django.urls import reverse

from .context import acting


class DeletionOriginMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self._admin_prefix = None

    def __call__(self, request):
        if self._admin_prefix is None:
            self._admin_prefix = reverse("admin:index")
        source = "admin" if request.path.startswith(self._admin_prefix) else "api"
        with acting(source=source, request=request):  # the user is read when a receipt is written
            return self.get_response(request)
