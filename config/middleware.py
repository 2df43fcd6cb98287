"""Refuse NUL characters in query strings and paths, for the API and the admin alike:
PostgreSQL cannot compare text with U+0000, so they would otherwise fail as a 500
deep in a query. JSON bodies are checked by `config.parsers.JSONParser`."""

from django.conf import settings
from django.http import JsonResponse

from .parsers import too_large


class RejectNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any("\x00" in v for values in request.GET.lists() for v in values[1]) or any(
            "\x00" in k for k in request.GET
        ):
            return JsonResponse({"detail": "NUL characters are not allowed in the URL."}, status=422)
        return self.get_response(request)


class BodyLimitMiddleware:
    """A request whose declared body is over `DATA_UPLOAD_MAX_MEMORY_SIZE` bytes is a 413
    with a JSON `detail` before anything reads it (the API's JSON parser also stops
    reading one byte past the limit when no length is declared)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit and request.path.startswith("/api/"):
            return JsonResponse({"detail": str(too_large().detail)}, status=413)
        return self.get_response(request)
