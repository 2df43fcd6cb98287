"""Every request records its deletions as done by its user, from `api` — or `admin`
under the admin site, `webhook` for an agent trigger's webhook call."""

from django.urls import reverse

from .context import acting


class DeletionOriginMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self._prefixes = None

    def source_of(self, path: str) -> str:
        if self._prefixes is None:
            webhook = reverse("webhook", kwargs={"trigger_id": "x", "secret": "y"}).rsplit("/", 2)[0] + "/"
            self._prefixes = ((reverse("admin:index"), "admin"), (webhook, "webhook"))
        return next((source for prefix, source in self._prefixes if path.startswith(prefix)), "api")

    def __call__(self, request):
        with acting(source=self.source_of(request.path), request=request):  # the user is read when a receipt is written
            return self.get_response(request)
