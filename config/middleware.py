"""Refuse NUL characters in query strings and paths, for the API and the admin alike:
PostgreSQL cannot compare text with U+0000, so they would otherwise fail as a 500
deep in a query. JSON bodies are checked by `config.parsers.JSONParser`."""

from django.http import JsonResponse


class RejectNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any("\x00" in v for values in request.GET.lists() for v in values[1]) or any(
            "\x00" in k for k in request.GET
        ):
            return JsonResponse({"detail": "NUL characters are not allowed in the URL."}, status=422)
        return self.get_response(request)
